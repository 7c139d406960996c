-- AlterTable
ALTER TABLE "Task" ADD COLUMN     "endpoints" JSONB;

-- CreateTable
CREATE TABLE "JoinToken" (
    "id" UUID NOT NULL,
    "machineName" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "expiresAt" TIMESTAMP(3) NOT NULL,
    "usedAt" TIMESTAMP(3),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "JoinToken_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "JoinToken_hash_key" ON "JoinToken"("hash");

-- CreateIndex
CREATE INDEX "JoinToken_machineName_idx" ON "JoinToken"("machineName");
