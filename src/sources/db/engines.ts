import type { DbEngine } from './engine.js';
import { mysqlEngine } from './mysql.js';
import { postgresEngine } from './postgres.js';
import { sqliteEngine } from './sqlite.js';
import type { DbEngineName } from './url.js';

const ENGINES: Record<DbEngineName, DbEngine> = { mysql: mysqlEngine, postgres: postgresEngine, sqlite: sqliteEngine };

export function engineFor(name: DbEngineName): DbEngine {
  return ENGINES[name];
}
