-- CreateTable
CREATE TABLE "ServiceTaskCounts" (
    "serviceId" UUID NOT NULL,
    "live" INTEGER NOT NULL DEFAULT 0,
    "running" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "ServiceTaskCounts_pkey" PRIMARY KEY ("serviceId")
);

-- AddForeignKey
ALTER TABLE "ServiceTaskCounts" ADD CONSTRAINT "ServiceTaskCounts_serviceId_fkey" FOREIGN KEY ("serviceId") REFERENCES "Service"("id") ON DELETE CASCADE ON UPDATE CASCADE;
