// A fingerprint of everything in schema `activity` except migration bookkeeping:
// two databases with the same fingerprint have the same catalogue.
import { createHash } from 'node:crypto'
import { withClient } from '../../src/db/admin-connection.ts'

const CATALOGUE_QUERIES = {
  relations: `SELECT c.relname, c.relkind, pg_get_userbyid(c.relowner) AS owner, c.relacl::text AS acl,
                     obj_description(c.oid, 'pg_class') AS comment
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'activity' AND c.relname NOT LIKE 'pgmigrations%' ORDER BY 1`,
  columns: `SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull,
                   pg_get_expr(d.adbin, d.adrelid) AS default
              FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
              LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
             WHERE n.nspname = 'activity' AND a.attnum > 0 AND NOT a.attisdropped AND c.relname NOT LIKE 'pgmigrations%'
             ORDER BY 1, 2`,
  constraints: `SELECT conrelid::regclass::text AS rel, conname, pg_get_constraintdef(oid) AS def
                  FROM pg_constraint WHERE connamespace = 'activity'::regnamespace
                   AND conrelid::regclass::text NOT LIKE '%pgmigrations%' ORDER BY 1, 2`,
  indexes: `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'activity' AND tablename NOT LIKE 'pgmigrations%' ORDER BY 1`,
  functions: `SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS args, pg_get_functiondef(p.oid) AS def,
                     pg_get_userbyid(p.proowner) AS owner, p.proacl::text AS acl, p.prosecdef, p.proconfig::text AS config,
                     obj_description(p.oid, 'pg_proc') AS comment
                FROM pg_proc p WHERE p.pronamespace = 'activity'::regnamespace ORDER BY 1, 2`,
  views: `SELECT viewname, definition FROM pg_views WHERE schemaname = 'activity' ORDER BY 1`,
  types: `SELECT t.typname FROM pg_type t WHERE t.typnamespace = 'activity'::regnamespace AND t.typtype <> 'b'
             AND t.typrelid = 0 ORDER BY 1`,
} as const

export type Catalogue = Record<keyof typeof CATALOGUE_QUERIES, unknown[]>

export async function catalogue(adminUrl: string): Promise<Catalogue> {
  return withClient(adminUrl, async (c) => {
    const out: Partial<Catalogue> = {}
    for (const [key, sql] of Object.entries(CATALOGUE_QUERIES)) {
      out[key as keyof Catalogue] = (await c.query(sql)).rows
    }
    return out as Catalogue
  })
}

export function fingerprint(cat: Catalogue): string {
  return createHash('sha256').update(JSON.stringify(cat)).digest('hex')
}
