import t from 'tap'
import { runConformance } from './run-under-tap.js'

runConformance(t, 0, 3)
