/** HTTP for data import/export (SPEC §3: data_io:execute/read). */
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../services.js';

export function registerDataIoRoutes(_app: FastifyInstance, _services: Services): void {
  // Filled in by the data I/O work.
}
