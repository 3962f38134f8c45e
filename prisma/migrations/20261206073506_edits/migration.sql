-- AlterTable
ALTER TABLE "Generation" ADD COLUMN     "blendParents" JSONB,
ADD COLUMN     "drawnMaskKey" TEXT,
ADD COLUMN     "maskBlur" INTEGER,
ADD COLUMN     "maskKey" TEXT,
ADD COLUMN     "pan" TEXT,
ADD COLUMN     "region" TEXT,
ADD COLUMN     "zoomOut" DOUBLE PRECISION;
