-- AlterTable
ALTER TABLE "ControlPlane" ADD COLUMN     "outageStartedAt" TIMESTAMP(3);
