-- CreateSchema
CREATE SCHEMA IF NOT EXISTS "public";

-- CreateEnum
CREATE TYPE "MachineState" AS ENUM ('CREATING', 'PROVISIONING', 'READY', 'STARTING', 'STOPPING', 'STOPPED', 'UNREACHABLE', 'ERROR', 'REMOVING');

-- CreateEnum
CREATE TYPE "NodeStatus" AS ENUM ('UNKNOWN', 'READY', 'DOWN');

-- CreateEnum
CREATE TYPE "NodeAvailability" AS ENUM ('ACTIVE', 'PAUSE', 'DRAIN');

-- CreateEnum
CREATE TYPE "NodeRole" AS ENUM ('WORKER', 'MANAGER');

-- CreateEnum
CREATE TYPE "ServiceMode" AS ENUM ('REPLICATED', 'GLOBAL');

-- CreateEnum
CREATE TYPE "TaskState" AS ENUM ('NEW', 'PENDING', 'ASSIGNED', 'ACCEPTED', 'PREPARING', 'STARTING', 'RUNNING', 'COMPLETE', 'SHUTDOWN', 'FAILED', 'REJECTED', 'ORPHANED');

-- CreateEnum
CREATE TYPE "DesiredTaskState" AS ENUM ('RUNNING', 'SHUTDOWN');

-- CreateTable
CREATE TABLE "Machine" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "driver" TEXT NOT NULL,
    "options" JSONB NOT NULL DEFAULT '{}',
    "state" "MachineState" NOT NULL DEFAULT 'CREATING',
    "stateReason" TEXT,
    "ip" TEXT,
    "sshUser" TEXT,
    "sshPort" INTEGER,
    "agentVersion" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Machine_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Node" (
    "id" UUID NOT NULL,
    "machineId" UUID,
    "hostname" TEXT NOT NULL,
    "role" "NodeRole" NOT NULL DEFAULT 'WORKER',
    "status" "NodeStatus" NOT NULL DEFAULT 'UNKNOWN',
    "availability" "NodeAvailability" NOT NULL DEFAULT 'ACTIVE',
    "labels" JSONB NOT NULL DEFAULT '{}',
    "address" TEXT,
    "cpuNanos" BIGINT NOT NULL DEFAULT 0,
    "memoryBytes" BIGINT NOT NULL DEFAULT 0,
    "lastHeartbeatAt" TIMESTAMP(3),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Node_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Service" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "mode" "ServiceMode" NOT NULL DEFAULT 'REPLICATED',
    "spec" JSONB NOT NULL,
    "previousSpec" JSONB,
    "version" INTEGER NOT NULL DEFAULT 1,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Service_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Task" (
    "id" UUID NOT NULL,
    "serviceId" UUID NOT NULL,
    "slot" INTEGER,
    "nodeId" UUID,
    "specVersion" INTEGER NOT NULL,
    "state" "TaskState" NOT NULL DEFAULT 'NEW',
    "desiredState" "DesiredTaskState" NOT NULL DEFAULT 'RUNNING',
    "message" TEXT,
    "error" TEXT,
    "containerId" TEXT,
    "exitCode" INTEGER,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Task_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Event" (
    "id" BIGSERIAL NOT NULL,
    "at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "kind" TEXT NOT NULL,
    "subjectId" TEXT,
    "action" TEXT NOT NULL,
    "data" JSONB NOT NULL DEFAULT '{}',

    CONSTRAINT "Event_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "ApiToken" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "role" TEXT NOT NULL DEFAULT 'admin',
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "lastUsedAt" TIMESTAMP(3),

    CONSTRAINT "ApiToken_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "Machine_name_key" ON "Machine"("name");

-- CreateIndex
CREATE UNIQUE INDEX "Node_machineId_key" ON "Node"("machineId");

-- CreateIndex
CREATE INDEX "Node_status_availability_idx" ON "Node"("status", "availability");

-- CreateIndex
CREATE UNIQUE INDEX "Service_name_key" ON "Service"("name");

-- CreateIndex
CREATE INDEX "Task_serviceId_desiredState_idx" ON "Task"("serviceId", "desiredState");

-- CreateIndex
CREATE INDEX "Task_nodeId_state_idx" ON "Task"("nodeId", "state");

-- CreateIndex
CREATE INDEX "Event_kind_subjectId_idx" ON "Event"("kind", "subjectId");

-- CreateIndex
CREATE INDEX "Event_at_idx" ON "Event"("at");

-- CreateIndex
CREATE UNIQUE INDEX "ApiToken_name_key" ON "ApiToken"("name");

-- CreateIndex
CREATE UNIQUE INDEX "ApiToken_hash_key" ON "ApiToken"("hash");

-- AddForeignKey
ALTER TABLE "Node" ADD CONSTRAINT "Node_machineId_fkey" FOREIGN KEY ("machineId") REFERENCES "Machine"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Task" ADD CONSTRAINT "Task_serviceId_fkey" FOREIGN KEY ("serviceId") REFERENCES "Service"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Task" ADD CONSTRAINT "Task_nodeId_fkey" FOREIGN KEY ("nodeId") REFERENCES "Node"("id") ON DELETE SET NULL ON UPDATE CASCADE;
