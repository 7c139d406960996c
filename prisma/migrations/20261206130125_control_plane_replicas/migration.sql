-- CreateTable
CREATE TABLE "ControlPlaneReplica" (
    "id" UUID NOT NULL,
    "machineId" UUID NOT NULL,
    "apiUrl" TEXT NOT NULL,
    "agentApiUrl" TEXT NOT NULL,
    "state" TEXT NOT NULL DEFAULT 'installing',
    "message" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "ControlPlaneReplica_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "ControlPlaneReplica_machineId_key" ON "ControlPlaneReplica"("machineId");

-- AddForeignKey
ALTER TABLE "ControlPlaneReplica" ADD CONSTRAINT "ControlPlaneReplica_machineId_fkey" FOREIGN KEY ("machineId") REFERENCES "Machine"("id") ON DELETE CASCADE ON UPDATE CASCADE;
