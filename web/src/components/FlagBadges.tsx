/** A key's hygiene flags (SPEC §12, §14) as badges, each with why it is raised in its title. */
import { FLAG_LABELS, FLAG_TONE, FLAG_WHY } from '../key-intelligence-api';

export function FlagBadge({ flag }: { flag: string }) {
  return (
    <span className={`badge badge-${FLAG_TONE[flag] ?? 'neutral'} badge-flag`} title={FLAG_WHY[flag]} data-flag={flag}>
      {FLAG_LABELS[flag] ?? flag.replace(/_/g, ' ')}
    </span>
  );
}

export function FlagBadges({ flags }: { flags: readonly string[] | undefined }) {
  if (!flags || flags.length === 0) return null;
  // Leaked first: it is the one that needs action now.
  const ordered = [...flags].sort((a, b) => Number(b === 'leaked') - Number(a === 'leaked'));
  return (
    <ul className="flag-list" aria-label="Flags">
      {ordered.map((flag) => (
        <li key={flag}>
          <FlagBadge flag={flag} />
        </li>
      ))}
    </ul>
  );
}
