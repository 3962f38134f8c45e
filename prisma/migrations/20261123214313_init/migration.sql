-- CreateSchema
CREATE SCHEMA IF NOT EXISTS "public";

-- CreateEnum
CREATE TYPE "QuotaPeriod" AS ENUM ('day', 'week', 'month');

-- CreateEnum
CREATE TYPE "LedgerKind" AS ENUM ('reserve', 'commit', 'refund', 'adjust');

-- CreateEnum
CREATE TYPE "GenerationStatus" AS ENUM ('queued', 'running', 'succeeded', 'failed', 'cancelled');

-- CreateTable
CREATE TABLE "Workspace" (
    "id" TEXT NOT NULL,
    "platform" TEXT NOT NULL,
    "platformWorkspaceId" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Workspace_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "User" (
    "id" TEXT NOT NULL,
    "platform" TEXT NOT NULL,
    "platformUserId" TEXT NOT NULL,
    "settings" JSONB NOT NULL DEFAULT '{}',
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "User_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "QuotaPolicy" (
    "id" TEXT NOT NULL,
    "workspaceId" TEXT NOT NULL,
    "userId" TEXT,
    "unitsPerPeriod" INTEGER,
    "period" "QuotaPeriod",
    "maxPixels" INTEGER,
    "maxSteps" INTEGER,
    "maxBatch" INTEGER,
    "allowedModels" TEXT[],
    "fastAllowed" BOOLEAN,
    "relaxAllowed" BOOLEAN,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "QuotaPolicy_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "QuotaBalance" (
    "workspaceId" TEXT NOT NULL,
    "userId" TEXT NOT NULL,
    "periodStart" TIMESTAMP(3) NOT NULL,
    "usedUnits" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "QuotaBalance_pkey" PRIMARY KEY ("workspaceId","userId","periodStart")
);

-- CreateTable
CREATE TABLE "UsageLedger" (
    "id" BIGSERIAL NOT NULL,
    "generationId" TEXT NOT NULL,
    "kind" "LedgerKind" NOT NULL,
    "units" INTEGER NOT NULL,
    "workspaceId" TEXT NOT NULL,
    "userId" TEXT,
    "periodStart" TIMESTAMP(3) NOT NULL,
    "settles" TEXT,
    "reason" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "UsageLedger_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Generation" (
    "id" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "status" "GenerationStatus" NOT NULL DEFAULT 'queued',
    "mode" TEXT NOT NULL,
    "workspaceId" TEXT NOT NULL,
    "userId" TEXT NOT NULL,
    "prompt" TEXT NOT NULL,
    "negativePrompt" TEXT NOT NULL,
    "seed" BIGINT NOT NULL,
    "width" INTEGER NOT NULL,
    "height" INTEGER NOT NULL,
    "steps" INTEGER NOT NULL,
    "guidance" DOUBLE PRECISION NOT NULL,
    "sampler" TEXT NOT NULL,
    "batch" INTEGER NOT NULL,
    "model" TEXT NOT NULL,
    "strength" DOUBLE PRECISION,
    "variationSeed" BIGINT,
    "variationStrength" DOUBLE PRECISION,
    "replyTarget" TEXT NOT NULL,
    "messageRef" TEXT,
    "parentId" TEXT,
    "parentImageIndex" INTEGER,
    "imageKeys" TEXT[],
    "gridKey" TEXT,
    "imageSeeds" BIGINT[],
    "timingsMs" JSONB,
    "errorMessage" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "startedAt" TIMESTAMP(3),
    "finishedAt" TIMESTAMP(3),

    CONSTRAINT "Generation_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Ban" (
    "id" TEXT NOT NULL,
    "platform" TEXT NOT NULL,
    "platformUserId" TEXT NOT NULL,
    "workspaceId" TEXT,
    "reason" TEXT NOT NULL,
    "bannedBy" TEXT NOT NULL,
    "expiresAt" TIMESTAMP(3),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Ban_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "AdminAction" (
    "id" BIGSERIAL NOT NULL,
    "platform" TEXT NOT NULL,
    "actorUserId" TEXT NOT NULL,
    "workspaceId" TEXT,
    "action" TEXT NOT NULL,
    "target" TEXT NOT NULL,
    "details" JSONB NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "AdminAction_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "Workspace_platform_platformWorkspaceId_key" ON "Workspace"("platform", "platformWorkspaceId");

-- CreateIndex
CREATE UNIQUE INDEX "User_platform_platformUserId_key" ON "User"("platform", "platformUserId");

-- CreateIndex
CREATE UNIQUE INDEX "QuotaPolicy_workspaceId_userId_key" ON "QuotaPolicy"("workspaceId", "userId");

-- CreateIndex
CREATE UNIQUE INDEX "UsageLedger_settles_key" ON "UsageLedger"("settles");

-- CreateIndex
CREATE INDEX "UsageLedger_userId_createdAt_idx" ON "UsageLedger"("userId", "createdAt");

-- CreateIndex
CREATE UNIQUE INDEX "UsageLedger_generationId_kind_key" ON "UsageLedger"("generationId", "kind");

-- CreateIndex
CREATE INDEX "Generation_userId_createdAt_idx" ON "Generation"("userId", "createdAt");

-- CreateIndex
CREATE INDEX "Generation_seed_idx" ON "Generation"("seed");

-- CreateIndex
CREATE INDEX "Generation_messageRef_idx" ON "Generation"("messageRef");

-- CreateIndex
CREATE INDEX "Generation_replyTarget_idx" ON "Generation"("replyTarget");

-- CreateIndex
CREATE INDEX "Generation_parentId_idx" ON "Generation"("parentId");

-- CreateIndex
CREATE INDEX "Ban_platform_platformUserId_idx" ON "Ban"("platform", "platformUserId");

-- CreateIndex
CREATE INDEX "AdminAction_workspaceId_createdAt_idx" ON "AdminAction"("workspaceId", "createdAt");

-- AddForeignKey
ALTER TABLE "QuotaPolicy" ADD CONSTRAINT "QuotaPolicy_workspaceId_fkey" FOREIGN KEY ("workspaceId") REFERENCES "Workspace"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "QuotaPolicy" ADD CONSTRAINT "QuotaPolicy_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "QuotaBalance" ADD CONSTRAINT "QuotaBalance_workspaceId_fkey" FOREIGN KEY ("workspaceId") REFERENCES "Workspace"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "QuotaBalance" ADD CONSTRAINT "QuotaBalance_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "UsageLedger" ADD CONSTRAINT "UsageLedger_workspaceId_fkey" FOREIGN KEY ("workspaceId") REFERENCES "Workspace"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "UsageLedger" ADD CONSTRAINT "UsageLedger_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Generation" ADD CONSTRAINT "Generation_workspaceId_fkey" FOREIGN KEY ("workspaceId") REFERENCES "Workspace"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Generation" ADD CONSTRAINT "Generation_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Generation" ADD CONSTRAINT "Generation_parentId_fkey" FOREIGN KEY ("parentId") REFERENCES "Generation"("id") ON DELETE SET NULL ON UPDATE CASCADE;
