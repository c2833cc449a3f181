import pino, { type Logger, type LoggerOptions } from 'pino'

/** One parsed JSON log line. */
export type LogLine = Record<string, unknown> & { msg?: string, level: number }

export interface CapturedLogs {
  logger: Logger
  lines: LogLine[]
}

/**
 * A real pino logger whose destination stream keeps every line, parsed, in
 * the order written: what a test asserts about is what pino serialised.
 */
export function captureLogs (options: LoggerOptions = {}): CapturedLogs {
  const lines: LogLine[] = []
  const destination = {
    write (line: string): void {
      lines.push(JSON.parse(line) as LogLine)
    }
  }
  return { logger: pino({ level: 'trace', base: undefined, timestamp: false, ...options }, destination), lines }
}
