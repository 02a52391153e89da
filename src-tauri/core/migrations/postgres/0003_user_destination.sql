-- What a user's mailbox is (`user`, `shared`, `room`, `equipment`) and what the migration made
-- of it at the destination (`account created`, ...), for the report (issue 15); the SQLite
-- journal's ADDED_COLUMNS `users.kind` and `users.destination`.
ALTER TABLE users ADD COLUMN kind TEXT;
ALTER TABLE users ADD COLUMN destination TEXT;
