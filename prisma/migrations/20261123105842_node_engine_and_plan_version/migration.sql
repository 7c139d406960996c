-- AlterTable
ALTER TABLE "Node" ADD COLUMN     "engineTlsRef" TEXT,
ADD COLUMN     "engineUrl" TEXT;

-- AlterTable
ALTER TABLE "Service" ADD COLUMN     "planVersion" INTEGER NOT NULL DEFAULT 0;

-- CreateIndex
CREATE UNIQUE INDEX "Node_hostname_key" ON "Node"("hostname");
