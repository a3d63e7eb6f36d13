/**
 * System reports (/admin/system/reports, global admins): the credential report of every key, the
 * signed compliance-evidence bundle (SPEC §14) and the system keys by requests (SPEC §12).
 *
 * The evidence is signed over its canonical JSON, so the file saved is the exact bytes Paygate
 * sent, never the panel's re-serialisation of them.
 */
import { useId, useState } from 'react';
import { Badge, ErrorAlert, StatusMessage } from '../components/Feedback';
import { FlagBadge } from '../components/FlagBadges';
import { formatDateLong } from '../format';
import { useAction, usePageTitle } from '../hooks';
import { formatCount, isMissingRoute, keyIntelligenceApi, saveFile, type ComplianceEvidence, type FetchedFile } from '../key-intelligence-api';
import { CredentialReportSection, UsageOverviewSection } from './Usage';

export function ReportsPage() {
  usePageTitle('Reports');
  return (
    <>
      <div className="page-header">
        <div>
          <h1 tabIndex={-1}>Reports</h1>
          <p className="page-lead">Evidence about every key of this Paygate: for audits, reviews and clean-ups.</p>
        </div>
      </div>
      <CredentialReportSection tier="system" organizationId={null} />
      <EvidenceSection />
      <UsageOverviewSection tier="system" organizationId={null} />
    </>
  );
}

function EvidenceSection() {
  const id = useId();
  const generate = useAction();
  const [bundle, setBundle] = useState<{ file: FetchedFile; evidence: ComplianceEvidence } | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const [missing, setMissing] = useState(false);

  const run = () =>
    generate.run(async () => {
      setStatus(null);
      try {
        const file = await keyIntelligenceApi.complianceEvidence();
        setBundle({ file, evidence: JSON.parse(file.text) as ComplianceEvidence });
      } catch (error) {
        if (isMissingRoute(error)) setMissing(true);
        else throw error;
      }
    });

  if (missing) return null;
  const e = bundle?.evidence;
  return (
    <section className="card" aria-labelledby={`${id}-title`}>
      <h2 id={`${id}-title`}>Compliance evidence</h2>
      <p>
        A bundle of the settings, the keys by status and flag, and the state of the audit log (its hash chain checked against the newest
        checkpoint), signed with the audit checkpoint key (Ed25519). Its public key is at <code>GET /v1/system/audit-checkpoints/public-key</code>.
      </p>
      <ErrorAlert error={generate.error} />
      <div className="button-row">
        <button type="button" className="button button-primary" disabled={generate.busy} onClick={() => void run()}>
          {bundle ? 'Generate again' : 'Generate evidence'}
        </button>
        {bundle && (
          <button
            type="button"
            className="button button-secondary"
            onClick={() => {
              saveFile(bundle.file, `compliance-evidence-${bundle.evidence.generatedAt.slice(0, 10)}.json`);
              setStatus('Compliance evidence downloaded.');
            }}
          >
            Download evidence (JSON)
          </button>
        )}
      </div>
      <StatusMessage message={status} />
      {e && (
        <div className="evidence">
          <dl className="facts">
            <div>
              <dt>Generated</dt>
              <dd>{formatDateLong(e.generatedAt)}</dd>
            </div>
            <div>
              <dt>Keys</dt>
              <dd>{formatCount(e.keys.total)}</dd>
            </div>
            <div>
              <dt>Audit events</dt>
              <dd>{formatCount(e.audit.events)}</dd>
            </div>
            <div>
              <dt>Oldest event</dt>
              <dd>{e.audit.oldestEventAt ? formatDateLong(e.audit.oldestEventAt) : '—'}</dd>
            </div>
            <div>
              <dt>Audit chain</dt>
              <dd>{e.audit.chainVerified ? <span className="badge badge-good">verified</span> : <span className="badge badge-bad">not verified</span>}</dd>
            </div>
          </dl>
          <div className="evidence-counts">
            <div>
              <h3>By status</h3>
              <ul className="count-list">
                {Object.entries(e.keys.byStatus).map(([status, n]) => (
                  <li key={status}>
                    <Badge status={status} /> {formatCount(n)}
                  </li>
                ))}
              </ul>
            </div>
            <div>
              <h3>By flag</h3>
              {Object.keys(e.keys.byFlag).length === 0 ? (
                <p className="muted small">No flags raised.</p>
              ) : (
                <ul className="count-list">
                  {Object.entries(e.keys.byFlag).map(([flag, n]) => (
                    <li key={flag}>
                      <FlagBadge flag={flag} /> {formatCount(n)}
                    </li>
                  ))}
                </ul>
              )}
            </div>
          </div>
        </div>
      )}
    </section>
  );
}
