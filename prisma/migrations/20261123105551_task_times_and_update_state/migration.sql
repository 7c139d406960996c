-- AlterTable
ALTER TABLE "Service" ADD COLUMN     "taskVersion" INTEGER NOT NULL DEFAULT 1,
ADD COLUMN     "updateState" JSONB;

-- AlterTable
ALTER TABLE "Task" ADD COLUMN     "finishedAt" TIMESTAMP(3),
ADD COLUMN     "startedAt" TIMESTAMP(3);
