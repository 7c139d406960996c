-- AlterTable
ALTER TABLE "Task" ADD COLUMN     "missingReports" INTEGER NOT NULL DEFAULT 0;

-- CreateTable
CREATE TABLE "ControlPlane" (
    "id" INTEGER NOT NULL DEFAULT 1,
    "healthySince" TIMESTAMP(3) NOT NULL,
    "intakeAliveAt" TIMESTAMP(3),

    CONSTRAINT "ControlPlane_pkey" PRIMARY KEY ("id")
);
