//! The `message/delivery-status` part (RFC 3464, 2.1): header-like blocks,
//! the per-message fields, a blank line, then one block per recipient,
//! read into a [`Report`] or the list of every problem with its line.

use super::{Action, DsnError, Problem, Recipient, RecipientReport, Report, Status};

/// One `Name: value` line of a delivery-status block, unfolded.
struct Field {
    /// Lowercase.
    name: String,
    value: String,
    line: usize,
}

struct Block {
    first_line: usize,
    fields: Vec<Field>,
}

impl Block {
    fn get(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|field| field.name == name)
    }

    fn count(&self, name: &str) -> usize {
        self.fields
            .iter()
            .filter(|field| field.name == name)
            .count()
    }
}

/// Reads a delivery-status part: the per-message block (unless the first
/// block already names a `Final-Recipient`, as a few servers write it),
/// then the recipient blocks.
pub(super) fn read_report(text: &str) -> Result<Report, DsnError> {
    let blocks = blocks(text).map_err(DsnError::Unreadable)?;
    let mut blocks = blocks.into_iter().peekable();
    let per_message = match blocks.peek() {
        Some(first) if first.get("final-recipient").is_none() => blocks.next(),
        _ => None,
    };
    let mut problems = Vec::new();
    let mut recipients = Vec::new();
    for block in blocks {
        match recipient(&block) {
            Ok(report) => recipients.push(report),
            Err(mut found) => problems.append(&mut found),
        }
    }
    if !problems.is_empty() {
        return Err(DsnError::Unreadable(problems));
    }
    if recipients.is_empty() {
        return Err(DsnError::NoRecipient);
    }
    let reporting_mta = per_message
        .as_ref()
        .and_then(|block| block.get("reporting-mta"))
        .map(|field| after_type(&field.value));
    Ok(Report {
        reporting_mta,
        recipients,
    })
}

/// Splits the part into blocks of fields at blank lines, unfolding
/// continued lines (those starting with a space or a tab).
fn blocks(text: &str) -> Result<Vec<Block>, Vec<Problem>> {
    let mut blocks = Vec::new();
    let mut current: Option<Block> = None;
    let mut problems = Vec::new();
    for (index, line) in text.split('\n').enumerate() {
        let number = index + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            blocks.extend(current.take());
            continue;
        }
        if line.starts_with([' ', '\t']) {
            match current.as_mut().and_then(|block| block.fields.last_mut()) {
                Some(field) => {
                    field.value.push(' ');
                    field.value.push_str(line.trim());
                }
                None => problems.push(Problem {
                    line: number,
                    problem: "a continued line with no field before it".into(),
                }),
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            problems.push(Problem {
                line: number,
                problem: "not a `Name: value` field".into(),
            });
            continue;
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            problems.push(Problem {
                line: number,
                problem: "a field name must be printable ASCII without spaces".into(),
            });
            continue;
        }
        current
            .get_or_insert_with(|| Block {
                first_line: number,
                fields: Vec::new(),
            })
            .fields
            .push(Field {
                name: name.to_ascii_lowercase(),
                value: value.trim().to_owned(),
                line: number,
            });
    }
    blocks.extend(current);
    if problems.is_empty() {
        Ok(blocks)
    } else {
        Err(problems)
    }
}

/// One recipient block, or every problem it has. `Final-Recipient`,
/// `Action` and `Status` must appear once; other fields may repeat (Exim
/// writes two `Remote-MTA`), the first is kept.
fn recipient(block: &Block) -> Result<RecipientReport, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut required = |name: &'static str, label: &str| -> Option<&Field> {
        match block.count(name) {
            0 => {
                problems.push(Problem {
                    line: block.first_line,
                    problem: format!("the recipient block has no {label} field"),
                });
                None
            }
            1 => block.get(name),
            _ => {
                problems.push(Problem {
                    line: block.first_line,
                    problem: format!("the recipient block has more than one {label} field"),
                });
                None
            }
        }
    };
    let final_recipient = required("final-recipient", "Final-Recipient");
    let action = required("action", "Action");
    let status = required("status", "Status");

    let final_recipient = final_recipient.and_then(|field| {
        address(field, "Final-Recipient")
            .map_err(|problem| problems.push(problem))
            .ok()
    });
    let original_recipient = block.get("original-recipient").and_then(|field| {
        address(field, "Original-Recipient")
            .map_err(|problem| problems.push(problem))
            .ok()
    });
    let action = action.and_then(|field| {
        let action = Action::parse(strip_comments(&field.value).trim());
        if action.is_none() {
            problems.push(Problem {
                line: field.line,
                problem: "Action must be failed, delayed, delivered, relayed or expanded".into(),
            });
        }
        action
    });
    let status = status.and_then(|field| {
        let status = Status::parse(strip_comments(&field.value).trim());
        if status.is_none() {
            problems.push(Problem {
                line: field.line,
                problem: "Status must be an enhanced status code, class.subject.detail (RFC 3463)"
                    .into(),
            });
        }
        status
    });
    let (Some(final_recipient), Some(action), Some(status), true) =
        (final_recipient, action, status, problems.is_empty())
    else {
        return Err(problems);
    };
    Ok(RecipientReport {
        final_recipient,
        original_recipient,
        action,
        status,
        remote_mta: block
            .get("remote-mta")
            .map(|field| after_type(&field.value)),
        diagnostic: block
            .get("diagnostic-code")
            .map(|field| after_type(&field.value)),
    })
}

/// `rfc822; someone@example.org`, comments and angle brackets removed.
fn address(field: &Field, label: &str) -> Result<Recipient, Problem> {
    let value = strip_comments(&field.value);
    let problem = |rule: &str| Problem {
        line: field.line,
        problem: format!("{label} {rule}"),
    };
    let (address_type, address) = value.split_once(';').ok_or_else(|| {
        problem("must be `type; address` (such as `rfc822; someone@example.org`)")
    })?;
    let address_type = address_type.trim().to_ascii_lowercase();
    let address = address.trim();
    let address = address
        .strip_prefix('<')
        .and_then(|inner| inner.strip_suffix('>'))
        .unwrap_or(address)
        .trim();
    if address_type.is_empty() || address.is_empty() {
        return Err(problem("must name an address type and an address"));
    }
    Ok(Recipient {
        address_type,
        address: address.to_owned(),
    })
}

/// The text after a `type;` prefix (`dns; mx.example.org`,
/// `smtp; 550 5.1.1 …`), or all of it when there is none.
fn after_type(value: &str) -> String {
    value
        .split_once(';')
        .map_or(value, |(_, text)| text)
        .trim()
        .to_owned()
}

/// The value without its RFC 5322 comments (parenthesised, nestable, not
/// inside a quoted string; a backslash quotes the next character).
pub(super) fn strip_comments(value: &str) -> String {
    let mut kept = String::with_capacity(value.len());
    let mut depth = 0usize;
    let mut quoted = false;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted || depth > 0 => {
                let next = chars.next();
                if depth == 0 {
                    kept.push(c);
                    kept.extend(next);
                }
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            '"' => {
                quoted = !quoted;
                kept.push(c);
            }
            _ => kept.push(c),
        }
    }
    kept
}
