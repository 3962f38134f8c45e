import { defaultQuotaPolicy } from '../core/quota.js';
import { openDatabase } from '../store/database.js';
import { createGenerationHistory } from '../store/generations.js';
import { createGenerationIntake } from '../store/intake.js';
import { PrismaQuotaLedger } from '../store/quota-ledger.js';

/** The stores a benchmark process opens on PostgreSQL, as the service wires them, with no quota limit. */
export async function openUnlimitedStores(databaseUrl: string) {
  const database = await openDatabase({ url: databaseUrl, poolSize: 4 });
  const ledgerOptions = { defaultPolicy: defaultQuotaPolicy({ unitsPerPeriod: null, period: 'day' }) };
  return {
    database,
    ledger: new PrismaQuotaLedger(database.prisma, ledgerOptions),
    history: createGenerationHistory(database.prisma),
    intake: createGenerationIntake(database.prisma, ledgerOptions),
  };
}
