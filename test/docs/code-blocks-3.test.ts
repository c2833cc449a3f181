import t from 'tap'
import { testMarkdownFiles } from './code-blocks.js'

// Part 3 of 3 of the docs' TypeScript blocks (see code-blocks.ts).
testMarkdownFiles(t, 2, 3)
