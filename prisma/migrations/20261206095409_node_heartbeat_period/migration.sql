-- AlterTable
ALTER TABLE "Node" ADD COLUMN     "heartbeatMs" INTEGER;
