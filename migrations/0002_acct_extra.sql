-- What else an accounting record needs to rebuild its RADIUS request
-- (NAS-Port, Calling-Station-Id, tunnel endpoints, every Class), opaque
-- to the database.
ALTER TABLE acct_queue ADD COLUMN extra bytea;
