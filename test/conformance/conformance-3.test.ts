import t from 'tap'
import { runConformance } from './run-under-tap.js'

runConformance(t, 2, 3)
