/**
 * What each export resource reads and how one row is written as CSV and as JSON.
 * Read-only SQL, always filtered by organization_id; rows oldest first by (created_at, id).
 * JSON rows have the API's object shapes (SPEC §10). CSV columns carry the same names; `metadata`
 * becomes one `metadata.<key>` column per key used in the export, so a client export imports again.
 */
import { toClientView } from '../clients/service.js';

export type ExportResource = 'clients' | 'invoices' | 'transactions';
export type ExportFormat = 'csv' | 'json';
type Cell = string | number | null;
type Row = Record<string, any>;

export interface ExportSource {
  /** FROM and WHERE, with $1 = the organization id. */
  from: string;
  columns: string;
  /** Whether rows carry a `metadata` object (spread into metadata.<key> CSV columns). */
  metadata: boolean;
  csvColumns: string[];
  csvValues(row: Row): Cell[];
  json(row: Row): unknown;
}

const iso = (value: Date | null): string | null => (value ? value.toISOString() : null);

export const EXPORT_SOURCES: Record<ExportResource, ExportSource> = {
  clients: {
    from: 'clients WHERE organization_id = $1 AND deleted_at IS NULL',
    columns: 'id, organization_id, name, email, metadata, created_at, updated_at',
    metadata: true,
    csvColumns: ['id', 'name', 'email', 'createdAt'],
    csvValues: (r) => [r.id, r.name, r.email, iso(r.created_at)],
    json: (r) => toClientView(r as Parameters<typeof toClientView>[0]),
  },
  invoices: {
    from: 'invoices WHERE organization_id = $1 AND deleted_at IS NULL',
    columns: 'id, client_id, status, currency, lines, total, due_at, created_at',
    metadata: false,
    // `lines` is a list; in CSV it is one JSON-encoded field.
    csvColumns: ['id', 'clientId', 'status', 'currency', 'total', 'dueAt', 'createdAt', 'lines'],
    csvValues: (r) => [r.id, r.client_id, r.status, r.currency, r.total, iso(r.due_at), iso(r.created_at), JSON.stringify(r.lines)],
    json: (r) => ({
      id: r.id,
      object: 'invoice',
      clientId: r.client_id,
      status: r.status,
      currency: r.currency,
      lines: r.lines,
      total: r.total,
      dueAt: iso(r.due_at),
      createdAt: iso(r.created_at),
    }),
  },
  transactions: {
    from: 'transactions WHERE organization_id = $1',
    columns: 'id, status, amount, amount_refunded, currency, checkout_id, client_id, invoice_id, metadata, created_at',
    metadata: true,
    csvColumns: ['id', 'status', 'amount', 'amountRefunded', 'currency', 'checkoutId', 'clientId', 'invoiceId', 'createdAt'],
    csvValues: (r) => [r.id, r.status, r.amount, r.amount_refunded, r.currency, r.checkout_id, r.client_id, r.invoice_id, iso(r.created_at)],
    json: (r) => ({
      id: r.id,
      object: 'transaction',
      status: r.status,
      amount: r.amount,
      amountRefunded: r.amount_refunded,
      currency: r.currency,
      checkoutId: r.checkout_id,
      clientId: r.client_id,
      invoiceId: r.invoice_id,
      metadata: r.metadata,
      createdAt: iso(r.created_at),
    }),
  },
};

/**
 * A CSV file has one column per metadata key found in the export; past this many it would be a
 * sheet nobody can read, so such an export fails and asks for JSON instead.
 */
export const MAX_METADATA_COLUMNS = 500;

export const CONTENT_TYPES: Record<ExportFormat, string> = {
  csv: 'text/csv; charset=utf-8',
  json: 'application/json; charset=utf-8',
};
