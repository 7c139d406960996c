-- Written by hand: Prisma's schema has no triggers. Every API process caches token checks and
-- LISTENs here (apps/api/src/tokens/token-changes.ts): any delete of a token, or change of what
-- a check answers (hash, name, role), is announced with the old hash, and a TRUNCATE with "*",
-- whoever makes it. Use records (lastUsedAt) are not announced.
CREATE FUNCTION flotilla_token_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM pg_notify('flotilla_token_changes', '*');
  ELSE
    PERFORM pg_notify('flotilla_token_changes', OLD.hash);
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER "ApiToken_announce_change"
  AFTER DELETE OR UPDATE OF hash, name, role ON "ApiToken"
  FOR EACH ROW EXECUTE FUNCTION flotilla_token_changed();

CREATE TRIGGER "ApiToken_announce_truncate"
  AFTER TRUNCATE ON "ApiToken"
  FOR EACH STATEMENT EXECUTE FUNCTION flotilla_token_changed();
