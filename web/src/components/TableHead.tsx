/**
 * The panel's table head: one column header per name and, when the rows end in buttons, an
 * unlabelled actions cell whose name only screen readers hear.
 */
export function TableHead({ columns, actions }: { columns: readonly string[]; actions?: string }) {
  return (
    <thead>
      <tr>
        {columns.map((column) => (
          <th key={column} scope="col">
            {column}
          </th>
        ))}
        {actions !== undefined && (
          <td className="actions-head">
            <span className="visually-hidden">{actions}</span>
          </td>
        )}
      </tr>
    </thead>
  );
}
