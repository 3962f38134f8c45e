-- AlterTable
ALTER TABLE "Generation" ADD COLUMN     "upscalePasses" INTEGER;
