import type { GenerationIntake } from '../core/ports.js';
import { guardDatabase } from './database-errors.js';
import type { PrismaClient } from './generated/prisma/client.js';
import { createGenerationHistory } from './generations.js';
import { PrismaQuotaLedger, type QuotaLedgerOptions } from './quota-ledger.js';

/** Reserve and record in one transaction: a bot killed in between leaves neither, never a charge with no generation. */
export function createGenerationIntake(prisma: PrismaClient, ledgerOptions: QuotaLedgerOptions): GenerationIntake {
  return {
    accept: (request, units) =>
      guardDatabase(() =>
        prisma.$transaction(async (tx) => {
          const reservation = await new PrismaQuotaLedger(tx, ledgerOptions).reserve(request, units);
          await createGenerationHistory(tx, ledgerOptions.now).recordQueued(request);
          return reservation;
        }),
      ),
  };
}
