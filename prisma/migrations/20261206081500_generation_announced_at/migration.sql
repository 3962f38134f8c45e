-- AlterTable
ALTER TABLE "Generation" ADD COLUMN     "announcedAt" TIMESTAMP(3);

-- CreateIndex
CREATE INDEX "Generation_status_announcedAt_idx" ON "Generation"("status", "announcedAt");

-- Outcomes recorded before this column existed were announced by the bot of that time: do not post them again.
UPDATE "Generation" SET "announcedAt" = COALESCE("finishedAt", CURRENT_TIMESTAMP) WHERE "status" IN ('succeeded', 'failed', 'cancelled');
