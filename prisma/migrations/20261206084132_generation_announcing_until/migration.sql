-- AlterTable
ALTER TABLE "Generation" ADD COLUMN     "announcingUntil" TIMESTAMP(3);
