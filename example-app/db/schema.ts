// The schema and seed data, created at start. Idempotent, so a PostgreSQL
// server can be reused across runs.
export const schema: string[] = [
  `CREATE TABLE IF NOT EXISTS users (
     id    integer PRIMARY KEY,
     name  text NOT NULL,
     token text NOT NULL UNIQUE
   )`,
  `CREATE TABLE IF NOT EXISTS notes (
     id       serial PRIMARY KEY,
     owner_id integer NOT NULL REFERENCES users(id),
     title    text NOT NULL,
     body     text NOT NULL DEFAULT '',
     created  timestamptz NOT NULL DEFAULT now()
   )`,
  // The database's own last line of defence: a tag longer than 20
  // characters fails the INSERT, after the note itself was written, and the
  // request's transaction must roll both back.
  `CREATE TABLE IF NOT EXISTS note_tags (
     note_id integer NOT NULL REFERENCES notes(id) ON DELETE CASCADE,
     tag     text NOT NULL CHECK (length(tag) BETWEEN 1 AND 20),
     PRIMARY KEY (note_id, tag)
   )`,
  `INSERT INTO users (id, name, token) VALUES
     (1, 'Alice', 'alice-token'),
     (2, 'Bob', 'bob-token')
   ON CONFLICT (id) DO NOTHING`
]
