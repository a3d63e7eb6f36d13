/** Clients (customers) of an organization: create, list (cursor, email filter), get, update, delete. */
import { listNewestFirst, type PageRequest } from '../../db/pages.js';
import type { Database, Queryable } from '../../db/database.js';
import type { Work } from '../../unit-of-work.js';
import { notFound } from '../../errors.js';
import { isId, newId } from '../../ids.js';

export interface ClientView {
  id: string;
  object: 'client';
  name: string;
  email: string | null;
  metadata: Record<string, string>;
  createdAt: string;
  updatedAt: string;
}

interface Row {
  id: string;
  organization_id: string;
  name: string;
  email: string | null;
  metadata: Record<string, string>;
  created_at: Date;
  updated_at: Date;
}

export const toClientView = (r: Row): ClientView => ({
  id: r.id,
  object: 'client',
  name: r.name,
  email: r.email,
  metadata: r.metadata,
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
});

export interface ClientInput {
  name: string;
  email?: string | null;
  metadata?: Record<string, string>;
}

export class ClientService {
  constructor(private readonly deps: { db: Database; work: Work }) {}

  async create(tx: Queryable, organizationId: string, input: ClientInput): Promise<ClientView> {
    const [row] = await tx.query<Row>(
      'INSERT INTO clients (id, organization_id, name, email, metadata) VALUES ($1, $2, $3, $4, $5) RETURNING *',
      [newId('client'), organizationId, input.name, input.email ?? null, JSON.stringify(input.metadata ?? {})],
    );
    return toClientView(row!);
  }

  /** Bulk insert for imports: one statement per batch, inside the caller's transaction. */
  async insertMany(tx: Queryable, organizationId: string, inputs: ClientInput[]): Promise<number> {
    if (inputs.length === 0) return 0;
    const rows = await tx.query(
      `INSERT INTO clients (id, organization_id, name, email, metadata)
       SELECT unnest($1::text[]), $2, unnest($3::text[]), unnest($4::text[]), unnest($5::jsonb[])
       RETURNING id`,
      [
        inputs.map(() => newId('client')),
        organizationId,
        inputs.map((c) => c.name),
        inputs.map((c) => c.email ?? null),
        inputs.map((c) => JSON.stringify(c.metadata ?? {})),
      ],
    );
    return rows.length;
  }

  async list(organizationId: string, page: PageRequest & { email?: string }) {
    return listNewestFirst(this.deps.db, {
      table: 'clients',
      organizationId,
      conditions: ['deleted_at IS NULL'],
      filters: [['lower(email)', page.email?.toLowerCase()]],
      page,
      what: 'client',
      map: toClientView,
    });
  }


  /** Tenant isolation: another organization's client is "not found". */
  async get(db: Queryable, organizationId: string, id: string, options: { forUpdate?: boolean } = {}): Promise<ClientView> {
    const rows = isId('client', id)
      ? await db.query<Row>(
          `SELECT * FROM clients WHERE id = $1 AND organization_id = $2 AND deleted_at IS NULL${options.forUpdate ? ' FOR UPDATE' : ''}`,
          [id, organizationId],
        )
      : [];
    if (!rows[0]) throw notFound('client');
    return toClientView(rows[0]);
  }

  async update(organizationId: string, id: string, changes: Partial<ClientInput>): Promise<ClientView> {
    return this.deps.work.run(async (tx) => {
      await this.get(tx, organizationId, id, { forUpdate: true });
      const [row] = await tx.query<Row>(
        `UPDATE clients SET name = coalesce($3, name),
           email = CASE WHEN $4 THEN $5 ELSE email END,
           metadata = coalesce($6, metadata), updated_at = now()
         WHERE id = $1 AND organization_id = $2 RETURNING *`,
        [id, organizationId, changes.name ?? null, changes.email !== undefined, changes.email ?? null, changes.metadata ? JSON.stringify(changes.metadata) : null],
      );
      return toClientView(row!);
    });
  }

  /** Soft delete: invoices and transactions keep pointing at the client for the books. */
  async delete(organizationId: string, id: string): Promise<void> {
    await this.deps.work.run(async (tx) => {
      await this.get(tx, organizationId, id, { forUpdate: true });
      await tx.query('UPDATE clients SET deleted_at = now(), updated_at = now() WHERE id = $1', [id]);
    });
  }
}
