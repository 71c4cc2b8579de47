//! A TOML registry read one `[[…]]` entry at a time. Parsing a whole file
//! builds a tree of every key and value before the registry's own shapes
//! are filled: for a national registry (20,000 référents, 100,000 commune
//! codes) that tree is several times the file. Each entry here is parsed
//! alone, into the borrowing shapes of `raw`, and its tree freed at once.
//!
//! An entry starts at a line that is an array-of-tables header of the
//! registry (`[[referent]]`, `[[route]]`, …; `[[referent.absences]]`
//! stays within its référent). Such a line can only be a header, or the
//! inside of a multi-line string, where cutting there leaves a string
//! unterminated. So a file whose entries all parse alone is read exactly
//! as a whole parse reads it; any error (of syntax or shape) sends the
//! file to the whole parse, whose message and line numbers are the ones
//! people get.

use super::raw::RawRegistry;

/// The file's entries parsed one by one; `None` if any fails (the caller
/// then parses the whole file, for its errors).
pub(super) fn by_entry(text: &str) -> Option<RawRegistry<'_>> {
    let mut registry: Option<RawRegistry<'_>> = None;
    for entry in entries(text) {
        let part: RawRegistry<'_> = toml::from_str(entry).ok()?;
        match &mut registry {
            None => registry = Some(part),
            Some(whole) => {
                if part.version.is_some() {
                    // Only the text before the first entry has top-level
                    // keys: a second `version` is the whole parse's error.
                    return None;
                }
                whole.route.extend(part.route);
                whole.referent.extend(part.referent);
                whole.publisher.extend(part.publisher);
                whole.network.extend(part.network);
            }
        }
    }
    registry
}

/// `text` cut before each line that is a header of a top-level array of
/// tables: the top-level keys first, then one entry per piece. (Also for
/// the commands that rewrite a registry file, which read it as this
/// module does.)
pub fn entries(text: &str) -> impl Iterator<Item = &str> {
    let mut starts = vec![0];
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if offset > 0 && is_entry_header(line) {
            starts.push(offset);
        }
        offset += line.len();
    }
    starts.push(text.len());
    starts
        .windows(2)
        .map(move |bounds| &text[bounds[0]..bounds[1]])
        .collect::<Vec<_>>()
        .into_iter()
}

/// `[[name]]`, spaces allowed inside the brackets and a comment after, at
/// the start of the line; `name` a bare key without dots.
fn is_entry_header(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("[[") else {
        return false;
    };
    let Some((name, after)) = rest.split_once("]]") else {
        return false;
    };
    let name = name.trim_matches([' ', '\t']);
    let after = after.trim_start_matches([' ', '\t']);
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
        && (after.is_empty() || after.starts_with(['#', '\n', '\r']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_cut_before_each_top_level_entry_and_nowhere_else() {
        let text = "version = \"v\"\n[[route]]\nkind = \"x\"\n[[ referent ]] # one\nid = \"a\"\n\
                    [[referent.absences]]\nfrom = \"2026-01-01\"\n  [[referent]]\n[[referent]]";
        let cut: Vec<&str> = entries(text).collect();
        assert_eq!(
            cut,
            [
                "version = \"v\"\n",
                "[[route]]\nkind = \"x\"\n",
                "[[ referent ]] # one\nid = \"a\"\n[[referent.absences]]\nfrom = \"2026-01-01\"\n  [[referent]]\n",
                "[[referent]]",
            ]
        );
    }

    #[test]
    fn a_header_inside_a_multi_line_string_sends_the_file_to_the_whole_parse() {
        let text = "[[route]]\nkind = \"x\"\nnetworks = [\"ccas\"]\nlabel = \"\"\"\n[[referent]]\n\"\"\"\n";
        assert!(by_entry(text).is_none());
        let whole: RawRegistry<'_> = toml::from_str(text).unwrap();
        assert_eq!(whole.route.len(), 1);
    }
}
