-- AlterTable
ALTER TABLE "Machine" ADD COLUMN     "clientsWrittenAt" TIMESTAMP(3),
ADD COLUMN     "sshHostKey" TEXT;
