-- AlterTable
ALTER TABLE "OverlayNetwork" ADD COLUMN     "lastAddress" TEXT;
