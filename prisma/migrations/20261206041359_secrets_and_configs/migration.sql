-- CreateEnum
CREATE TYPE "SecretKind" AS ENUM ('SECRET', 'CONFIG');

-- CreateTable
CREATE TABLE "Secret" (
    "id" UUID NOT NULL,
    "kind" "SecretKind" NOT NULL,
    "name" TEXT NOT NULL,
    "ciphertext" BYTEA NOT NULL,
    "iv" BYTEA NOT NULL,
    "tag" BYTEA NOT NULL,
    "keyId" TEXT NOT NULL,
    "size" INTEGER NOT NULL,
    "labels" JSONB NOT NULL DEFAULT '{}',
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Secret_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "Secret_kind_name_key" ON "Secret"("kind", "name");
