-- CreateTable
CREATE TABLE "OverlayNetwork" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "driver" TEXT NOT NULL DEFAULT 'overlay',
    "subnet" TEXT NOT NULL,
    "gateway" TEXT NOT NULL,
    "vni" INTEGER NOT NULL,
    "labels" JSONB NOT NULL DEFAULT '{}',
    "internal" BOOLEAN NOT NULL DEFAULT false,
    "attachable" BOOLEAN NOT NULL DEFAULT false,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "OverlayNetwork_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "OverlayAddress" (
    "id" UUID NOT NULL,
    "networkId" UUID NOT NULL,
    "ip" TEXT NOT NULL,
    "serviceId" UUID,
    "taskId" UUID,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "OverlayAddress_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "OverlayNetwork_name_key" ON "OverlayNetwork"("name");

-- CreateIndex
CREATE UNIQUE INDEX "OverlayNetwork_subnet_key" ON "OverlayNetwork"("subnet");

-- CreateIndex
CREATE UNIQUE INDEX "OverlayNetwork_vni_key" ON "OverlayNetwork"("vni");

-- CreateIndex
CREATE INDEX "OverlayAddress_taskId_idx" ON "OverlayAddress"("taskId");

-- CreateIndex
CREATE INDEX "OverlayAddress_serviceId_idx" ON "OverlayAddress"("serviceId");

-- CreateIndex
CREATE UNIQUE INDEX "OverlayAddress_networkId_ip_key" ON "OverlayAddress"("networkId", "ip");

-- CreateIndex
CREATE UNIQUE INDEX "OverlayAddress_networkId_serviceId_key" ON "OverlayAddress"("networkId", "serviceId");

-- CreateIndex
CREATE UNIQUE INDEX "OverlayAddress_networkId_taskId_key" ON "OverlayAddress"("networkId", "taskId");

-- AddForeignKey
ALTER TABLE "OverlayAddress" ADD CONSTRAINT "OverlayAddress_networkId_fkey" FOREIGN KEY ("networkId") REFERENCES "OverlayNetwork"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "OverlayAddress" ADD CONSTRAINT "OverlayAddress_serviceId_fkey" FOREIGN KEY ("serviceId") REFERENCES "Service"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "OverlayAddress" ADD CONSTRAINT "OverlayAddress_taskId_fkey" FOREIGN KEY ("taskId") REFERENCES "Task"("id") ON DELETE CASCADE ON UPDATE CASCADE;
