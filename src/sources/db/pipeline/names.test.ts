import { describe, expect, it } from 'vitest';
import { archiveNamePattern, dumpFileName, dumpTimestamp } from './names.js';

describe('dump file names', () => {
  it('names files engine-timestamp-database-uuid.sql, and archives .sql.zip', () => {
    const at = new Date(2025, 0, 2, 3, 4, 5);
    expect(dumpTimestamp(at)).toBe('2025-01-02-03-04-05');
    const name = dumpFileName('mysql', 'pt_xyz', at, '0b7e8a8e-1111-4222-8333-944445555666');
    expect(name).toBe('mysql-2025-01-02-03-04-05-pt_xyz-0b7e8a8e-1111-4222-8333-944445555666.sql');
    expect(archiveNamePattern('pt_xyz').test(`${name}.zip`)).toBe(true);
    expect(archiveNamePattern('pt').test(`${name}.zip`)).toBe(false);
    expect(dumpFileName('postgres', 'a', at)).toMatch(/^postgres-2025-01-02-03-04-05-a-[0-9a-f-]{36}\.sql$/);
  });
});
