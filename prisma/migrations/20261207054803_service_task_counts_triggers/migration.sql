-- Written by hand: Prisma's schema has no triggers. The listings' task counts per service
-- (ServiceTaskCounts) are kept by the statements that change tasks: after each insert, update
-- or delete statement on "Task", its difference in live and running tasks per service is added
-- to that service's row. Counting every task at each listing was 95 ms at 150,000 tasks, and
-- listings are polled every second or two while a large change runs.
--   - live: desired RUNNING and NEW … RUNNING (libs/core ACTIVE_TASK_STATES; a test compares
--     these counts with a count of the tasks after every kind of change);
--   - services with no difference are not touched (no lock for a statement that changes no
--     count), the others in service id order (statements of several services lock their rows
--     in one order), and a service deleted in the same statement (its tasks cascade) is skipped.
CREATE FUNCTION flotilla_task_live(state "TaskState", desired "DesiredTaskState") RETURNS int
  LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN desired = 'RUNNING' AND state IN ('NEW', 'PENDING', 'ASSIGNED', 'ACCEPTED', 'PREPARING', 'STARTING', 'RUNNING')
    THEN 1 ELSE 0 END
$$;

CREATE FUNCTION flotilla_task_running(state "TaskState", desired "DesiredTaskState") RETURNS int
  LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN desired = 'RUNNING' AND state = 'RUNNING' THEN 1 ELSE 0 END
$$;

CREATE FUNCTION flotilla_task_counts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO "ServiceTaskCounts" AS c ("serviceId", live, running)
    SELECT d."serviceId", d.live, d.running FROM (
      SELECT n."serviceId", sum(flotilla_task_live(n.state, n."desiredState"))::int AS live,
        sum(flotilla_task_running(n.state, n."desiredState"))::int AS running
      FROM new_rows n GROUP BY 1) d
    JOIN "Service" s ON s.id = d."serviceId"
    WHERE d.live <> 0 OR d.running <> 0
    ORDER BY d."serviceId"
    ON CONFLICT ("serviceId") DO UPDATE SET live = c.live + EXCLUDED.live, running = c.running + EXCLUDED.running;
  ELSIF TG_OP = 'UPDATE' THEN
    INSERT INTO "ServiceTaskCounts" AS c ("serviceId", live, running)
    SELECT d."serviceId", d.live, d.running FROM (
      SELECT x."serviceId", sum(x.live)::int AS live, sum(x.running)::int AS running FROM (
        SELECT n."serviceId", flotilla_task_live(n.state, n."desiredState") AS live,
          flotilla_task_running(n.state, n."desiredState") AS running FROM new_rows n
        UNION ALL
        SELECT o."serviceId", -flotilla_task_live(o.state, o."desiredState"),
          -flotilla_task_running(o.state, o."desiredState") FROM old_rows o) x
      GROUP BY 1) d
    JOIN "Service" s ON s.id = d."serviceId"
    WHERE d.live <> 0 OR d.running <> 0
    ORDER BY d."serviceId"
    ON CONFLICT ("serviceId") DO UPDATE SET live = c.live + EXCLUDED.live, running = c.running + EXCLUDED.running;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO "ServiceTaskCounts" AS c ("serviceId", live, running)
    SELECT d."serviceId", -d.live, -d.running FROM (
      SELECT o."serviceId", sum(flotilla_task_live(o.state, o."desiredState"))::int AS live,
        sum(flotilla_task_running(o.state, o."desiredState"))::int AS running
      FROM old_rows o GROUP BY 1) d
    JOIN "Service" s ON s.id = d."serviceId"
    WHERE d.live <> 0 OR d.running <> 0
    ORDER BY d."serviceId"
    ON CONFLICT ("serviceId") DO UPDATE SET live = c.live + EXCLUDED.live, running = c.running + EXCLUDED.running;
  ELSE
    DELETE FROM "ServiceTaskCounts";
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER "Task_counts_insert" AFTER INSERT ON "Task"
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION flotilla_task_counts_changed();
CREATE TRIGGER "Task_counts_update" AFTER UPDATE ON "Task"
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION flotilla_task_counts_changed();
CREATE TRIGGER "Task_counts_delete" AFTER DELETE ON "Task"
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION flotilla_task_counts_changed();
CREATE TRIGGER "Task_counts_truncate" AFTER TRUNCATE ON "Task"
  FOR EACH STATEMENT EXECUTE FUNCTION flotilla_task_counts_changed();

-- The counts of the tasks already there.
INSERT INTO "ServiceTaskCounts" ("serviceId", live, running)
SELECT t."serviceId", sum(flotilla_task_live(t.state, t."desiredState"))::int, sum(flotilla_task_running(t.state, t."desiredState"))::int
FROM "Task" t GROUP BY 1;
