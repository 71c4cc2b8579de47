//! The registry as a spreadsheet: its columns and their French names, and
//! the text of a CSV file as spreadsheets save it (UTF-8 with or without a
//! byte-order mark, or Windows-1252; `;` or `,` between fields). Import and
//! export share this vocabulary, so a file exported is a file importable.

use relais_core::geography::normalise;

/// A column of the registry's spreadsheet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Column {
    Id,
    Network,
    Organisation,
    Name,
    Email,
    Phone,
    Insee,
    PostalCode,
    Commune,
    Epci,
    Departement,
    Region,
    Fallback,
    Deputies,
}

impl Column {
    /// Every column, in the order an export writes them (but
    /// `postal_code` and `commune`, which it never writes).
    pub(super) const ALL: [Column; 14] = [
        Column::Id,
        Column::Network,
        Column::Organisation,
        Column::Name,
        Column::Email,
        Column::Phone,
        Column::Insee,
        Column::PostalCode,
        Column::Commune,
        Column::Epci,
        Column::Departement,
        Column::Region,
        Column::Fallback,
        Column::Deputies,
    ];

    /// The column's English name, as an export writes it.
    pub(super) fn name(self) -> &'static str {
        match self {
            Column::Id => "id",
            Column::Network => "network",
            Column::Organisation => "organisation",
            Column::Name => "name",
            Column::Email => "email",
            Column::Phone => "phone",
            Column::Insee => "insee",
            Column::PostalCode => "postal_code",
            Column::Commune => "commune",
            Column::Epci => "epci",
            Column::Departement => "departement",
            Column::Region => "region",
            Column::Fallback => "fallback",
            Column::Deputies => "deputies",
        }
    }

    /// The column's French name, also accepted.
    fn french(self) -> &'static str {
        match self {
            Column::Id => "identifiant",
            Column::Network => "reseau",
            Column::Organisation => "organisme",
            Column::Name => "nom",
            Column::Email => "courriel",
            Column::Phone => "telephone",
            Column::Insee => "code_insee",
            Column::PostalCode => "code_postal",
            Column::Commune => "commune",
            Column::Epci => "epci",
            Column::Departement => "departement",
            Column::Region => "region",
            Column::Fallback => "repli",
            Column::Deputies => "suppleants",
        }
    }

    /// The column a header cell names, in English or in French, in any
    /// case, with or without accents, `_`, `-` or a space between words
    /// (`Code postal`, `téléphone`, `Réseau`).
    pub(super) fn from_header(header: &str) -> Option<Column> {
        let key = normalise(header).replace(' ', "_");
        Column::ALL
            .into_iter()
            .find(|column| key == column.name() || key == column.french())
    }

    /// The names a header may use, for the error that refuses another.
    pub(super) fn accepted() -> String {
        Column::ALL
            .iter()
            .map(|column| match column.french() {
                french if french == column.name() => format!("`{}`", column.name()),
                french => format!("`{}` (`{french}`)", column.name()),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The text of a CSV file: UTF-8 when it is valid UTF-8 (its byte-order
/// mark dropped), else Windows-1252, which every byte decodes.
pub(super) fn decode(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => encoding_rs::WINDOWS_1252
            .decode_without_bom_handling(bytes)
            .0
            .into_owned(),
    }
}

/// The field separator, read from the header line: `;` (as French
/// spreadsheets save CSV) unless the line has more `,`.
pub(super) fn separator(text: &str) -> u8 {
    let header = text.lines().next().unwrap_or_default();
    let count = |c| header.matches(c).count();
    if count(',') > count(';') { b',' } else { b';' }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_is_read_in_english_or_french_with_or_without_accents() {
        assert_eq!(Column::from_header("Code postal"), Some(Column::PostalCode));
        assert_eq!(Column::from_header("téléphone"), Some(Column::Phone));
        assert_eq!(Column::from_header("Réseau"), Some(Column::Network));
        assert_eq!(
            Column::from_header(" Département "),
            Some(Column::Departement)
        );
        assert_eq!(Column::from_header("suppléants"), Some(Column::Deputies));
        assert_eq!(Column::from_header("postal_code"), Some(Column::PostalCode));
        assert_eq!(Column::from_header("ville"), None);
    }

    #[test]
    fn utf_8_is_read_first_then_windows_1252() {
        assert_eq!(
            decode(b"\xEF\xBB\xBFnom\nSaint-\xC3\x89tienne"),
            "nom\nSaint-Étienne"
        );
        assert_eq!(decode(b"nom\nSaint-\xC9tienne"), "nom\nSaint-Étienne");
    }

    #[test]
    fn the_separator_is_the_header_line_s() {
        assert_eq!(separator("id;network;email\n1,2"), b';');
        assert_eq!(separator("id,network,email\n1;2;3;4"), b',');
    }
}
