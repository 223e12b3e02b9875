//! Kubernetes manifests, edited as text (pure): every image of a managed service gets the new
//! version tag, its container `imagePullPolicy: IfNotPresent`, and its pod `imagePullSecrets`
//! the pull secret (R12). Only those tokens change: comments, quoting, order, other containers
//! and other documents in the file stay byte for byte.

use anyhow::bail;

use crate::reference::ImageRef;

/// The pull secret of R12.
pub const PULL_SECRET: &str = "docker-hub-creds";

/// Which images are ours: a registry host and repository path, for example
/// `docker.io` + `battlescope/frontend`.
pub struct Managed<'a> {
    pub hosts: Vec<&'a str>,
    pub paths: Vec<String>,
}

impl Managed<'_> {
    fn owns(&self, image: &ImageRef) -> bool {
        self.hosts.contains(&image.registry.as_str()) && self.paths.contains(&image.repository)
    }
}

/// One line split for editing: indentation, an optional `- ` item marker, the key, and the
/// value's byte range in the line.
struct KeyLine {
    /// Column of the key (after any `- `).
    column: usize,
    starts_item: bool,
    key: String,
    value_start: usize,
    value_end: usize,
}

fn key_line(line: &str) -> Option<KeyLine> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    let mut rest = &line[indent..];
    let mut column = indent;
    let starts_item = rest.starts_with("- ");
    if starts_item {
        let after = rest[2..].trim_start_matches(' ');
        column += rest.len() - after.len();
        rest = after;
    }
    if rest.starts_with('#') || rest.is_empty() {
        return None;
    }
    let colon = rest.find(':')?;
    let key = &rest[..colon];
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return None;
    }
    let after_colon = &rest[colon + 1..];
    if !(after_colon.is_empty() || after_colon.starts_with(' ')) {
        return None;
    }
    let value_offset = column + colon + 1 + (after_colon.len() - after_colon.trim_start().len());
    let value_text = &line[value_offset..];
    let value_len = if let Some(quote) = value_text.chars().next().filter(|c| *c == '"' || *c == '\'') {
        value_text[1..].find(quote).map_or(value_text.len(), |end| end + 2)
    } else {
        // Up to a comment, without the spaces before it.
        value_text.find(" #").map_or(value_text, |end| &value_text[..end]).trim_end().len()
    };
    Some(KeyLine {
        column,
        starts_item,
        key: key.to_string(),
        value_start: value_offset,
        value_end: value_offset + value_len,
    })
}

/// Whether text follows the value on its line that is neither blank nor a comment (`'a'b`):
/// no valid YAML, and nothing this editor can rewrite in place.
fn junk_after_value(line: &str, key: &KeyLine) -> bool {
    let rest = &line[key.value_end..];
    let comment = rest.starts_with([' ', '\t']) && rest.trim_start().starts_with('#');
    !(rest.trim().is_empty() || comment)
}

fn indent_of(line: &str) -> Option<usize> {
    let trimmed = line.trim_start_matches(' ');
    (!trimmed.is_empty() && !trimmed.starts_with('#')).then(|| line.len() - trimmed.len())
}

/// The line range of the mapping whose keys sit at `column` and that contains line `at`.
fn mapping_range(lines: &[String], at: usize, column: usize) -> (usize, usize) {
    let mut start = at;
    loop {
        let here = key_line(&lines[start]);
        if here.as_ref().is_some_and(|line| line.starts_item && line.column == column) || start == 0 {
            break;
        }
        match indent_of(&lines[start - 1]) {
            Some(indent)
                if indent < column
                    && !key_line(&lines[start - 1]).is_some_and(|line| line.starts_item && line.column == column) =>
            {
                break;
            }
            _ => start -= 1,
        }
        if lines[start].trim_start().starts_with("---") {
            start += 1;
            break;
        }
    }
    let mut end = at + 1;
    while end < lines.len() {
        if lines[end].starts_with("---") {
            break;
        }
        match indent_of(&lines[end]) {
            Some(indent) if indent < column => break,
            _ => end += 1,
        }
    }
    (start, end)
}

/// The line of `key` among the keys of the mapping at `column` in `range`.
fn find_key(lines: &[String], (start, end): (usize, usize), column: usize, key: &str) -> Option<usize> {
    (start..end).find(|index| key_line(&lines[*index]).is_some_and(|line| line.column == column && line.key == key))
}

/// Sets every managed image in `text` to `tag`. `file` names the file in errors.
pub fn set_images(text: &str, file: &str, managed: &Managed, tag: &str) -> anyhow::Result<String> {
    let newline = line_ending(text, file)?;
    let body = text.strip_suffix(newline).unwrap_or(text);
    let mut lines: Vec<String> =
        if body.is_empty() { Vec::new() } else { body.split(newline).map(str::to_string).collect() };
    let mut found = 0;
    let mut index = 0;
    while index < lines.len() {
        let Some(line) = key_line(&lines[index]).filter(|line| line.key == "image") else {
            index += 1;
            continue;
        };
        if junk_after_value(&lines[index], &line) {
            bail!("{file}:{}: text follows the image's value on its line; remove it", index + 1);
        }
        let raw = lines[index][line.value_start..line.value_end].to_string();
        let (anchor, value) = match raw.strip_prefix('&') {
            Some(rest) => {
                rest.split_once(' ').map_or((raw.as_str(), ""), |(name, value)| (&raw[..name.len() + 1], value))
            }
            None => ("", raw.as_str()),
        };
        let quote = value.chars().next().filter(|c| *c == '"' || *c == '\'');
        let unquoted = value.trim_matches(|c| Some(c) == quote);
        if value.starts_with('*') || value.starts_with('{') || value.starts_with('[') {
            index += 1;
            continue;
        }
        let Ok(image) = ImageRef::parse(unquoted) else {
            index += 1;
            continue;
        };
        if !managed.owns(&image) {
            index += 1;
            continue;
        }
        found += 1;
        // Keep the reference as written (short or full), change only the tag.
        let name_end = unquoted.len() - image.digest.as_ref().map_or(0, |digest| digest.len() + 1);
        let name = &unquoted[..name_end];
        let name = match &image.tag {
            Some(old) => &name[..name.len() - old.len() - 1],
            None => name,
        };
        let quote = quote.map(String::from).unwrap_or_default();
        let separator = if anchor.is_empty() { "" } else { " " };
        let new_value = format!("{anchor}{separator}{quote}{name}:{tag}{quote}");
        lines[index].replace_range(line.value_start..line.value_end, &new_value);
        ensure_pull_policy(&mut lines, index, line.column, file)?;
        // Lines added above the image move it down: step past it, so each image is edited once.
        index += ensure_pull_secret(&mut lines, index, line.column, file)? + 1;
    }
    if found == 0 {
        bail!(
            "{file}: no image of a managed service was found; it is listed under `kubernetes` in services/services.toml, so it should reference one"
        );
    }
    let mut result = lines.join(newline);
    if text.ends_with('\n') {
        result.push_str(newline);
    }
    Ok(result)
}

/// The file's one line ending: every edit keeps it. Mixed endings (or a bare carriage return,
/// which YAML also reads as a line break) are refused rather than silently normalized.
fn line_ending(text: &str, file: &str) -> anyhow::Result<&'static str> {
    let crlf = text.matches("\r\n").count();
    let (cr, lf) = (text.matches('\r').count(), text.matches('\n').count());
    match (crlf, cr, lf) {
        (0, 0, _) => Ok("\n"),
        (crlf, cr, lf) if crlf == cr && crlf == lf => Ok("\r\n"),
        _ => bail!(
            "{file}: mixes line endings (Windows CRLF, Unix LF or bare CR); convert it to one kind, for example with `dos2unix {file}`"
        ),
    }
}

fn ensure_pull_policy(lines: &mut Vec<String>, image_line: usize, column: usize, file: &str) -> anyhow::Result<()> {
    let range = mapping_range(lines, image_line, column);
    match find_key(lines, range, column, "imagePullPolicy") {
        Some(policy) => {
            let line = key_line(&lines[policy]).unwrap();
            let value = &lines[policy][line.value_start..line.value_end];
            // An empty value is a block (or null): not a policy this editor can rewrite in place.
            if value.is_empty() || junk_after_value(&lines[policy], &line) {
                bail!(
                    "{file}:{}: `imagePullPolicy:` has no single value on its line; write `imagePullPolicy: IfNotPresent`",
                    policy + 1
                );
            }
            if value.trim_matches(['"', '\'']) != "IfNotPresent" {
                lines[policy].replace_range(line.value_start..line.value_end, "IfNotPresent");
            }
        }
        None => lines.insert(image_line + 1, format!("{}imagePullPolicy: IfNotPresent", " ".repeat(column))),
    }
    Ok(())
}

/// Adds the pull secret to the image's pod spec if missing; returns how many lines it added
/// above `image_line`.
fn ensure_pull_secret(lines: &mut Vec<String>, image_line: usize, column: usize, file: &str) -> anyhow::Result<usize> {
    // The pod spec is the mapping holding the `containers:` (or `initContainers:`) key above.
    let Some((containers, spec_column)) = (0..image_line).rev().find_map(|index| {
        key_line(&lines[index])
            .filter(|line| line.column < column && (line.key == "containers" || line.key == "initContainers"))
            .map(|line| (index, line.column))
    }) else {
        bail!("{file}:{}: this image is not under a `containers:` list", image_line + 1);
    };
    if key_line(&lines[containers]).is_some_and(|line| line.starts_item) {
        bail!(
            "{file}:{}: `containers:` opens a list item, so this is no pod spec the release can add `imagePullSecrets` to; make the pod spec a mapping",
            containers + 1
        );
    }
    let range = mapping_range(lines, containers, spec_column);
    let item_column = (containers + 1..lines.len())
        .find_map(|index| indent_of(&lines[index]))
        .filter(|indent| *indent >= spec_column)
        .unwrap_or(spec_column + 2);
    match find_key(lines, range, spec_column, "imagePullSecrets") {
        None => {
            let pad = " ".repeat(spec_column);
            lines.insert(containers, format!("{}- name: {PULL_SECRET}", " ".repeat(item_column)));
            lines.insert(containers, format!("{pad}imagePullSecrets:"));
            Ok(2)
        }
        Some(secrets) => {
            let line = key_line(&lines[secrets]).unwrap();
            if line.value_end > line.value_start {
                bail!(
                    "{file}:{}: write `imagePullSecrets` as a block list to let the release add `{PULL_SECRET}`",
                    secrets + 1
                );
            }
            let mut end = secrets + 1;
            while end < lines.len()
                && indent_of(&lines[end]).is_none_or(|indent| {
                    indent > spec_column || (indent == spec_column && lines[end].trim_start().starts_with("- "))
                })
            {
                end += 1;
            }
            let named = (secrets + 1..end).any(|index| {
                let text = lines[index].trim_start().trim_start_matches("- ").trim();
                text.strip_prefix("name:").is_some_and(|name| name.trim().trim_matches(['"', '\'']) == PULL_SECRET)
            });
            if named {
                return Ok(0);
            }
            let entry_column = (secrets + 1..end).find_map(|index| indent_of(&lines[index])).unwrap_or(spec_column + 2);
            lines.insert(secrets + 1, format!("{}- name: {PULL_SECRET}", " ".repeat(entry_column)));
            Ok(usize::from(secrets < image_line))
        }
    }
}

/// R12's rules for every managed image in a Kubernetes file: a version tag (never `latest`,
/// never untagged), `imagePullPolicy: IfNotPresent`, and in its pod spec `imagePullSecrets`
/// naming the pull secret and `runAsNonRoot: true` with a numeric `runAsUser`. Each problem
/// names the file and line.
pub fn check(text: &str, file: &str, managed: &Managed) -> Vec<String> {
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut problems = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let Some(key) = key_line(line).filter(|key| key.key == "image") else { continue };
        let value = line[key.value_start..key.value_end].trim_matches(['"', '\'']);
        let Ok(image) = ImageRef::parse(value.rsplit(' ').next().unwrap_or(value)) else { continue };
        if !managed.owns(&image) {
            continue;
        }
        let at = format!("{file}:{}", index + 1);
        match image.tag.as_deref() {
            None if image.digest.is_none() => problems.push(format!(
                "{at}: `{value}` has no tag, which means `latest`: pin a version (`cargo xtask release` sets it)"
            )),
            Some("latest") => {
                problems.push(format!("{at}: `{value}` uses `latest`, never for production (R12): pin a version"))
            }
            _ => {}
        }
        let range = mapping_range(&lines, index, key.column);
        let policy = find_key(&lines, range, key.column, "imagePullPolicy").and_then(|policy| {
            let policy_key = key_line(&lines[policy])?;
            Some(lines[policy][policy_key.value_start..policy_key.value_end].trim_matches(['"', '\'']).to_string())
        });
        if policy.as_deref() != Some("IfNotPresent") {
            problems
                .push(format!("{at}: imagePullPolicy is {}, not IfNotPresent", policy.as_deref().unwrap_or("unset")));
        }
        let Some((containers, spec_column)) = (0..index).rev().find_map(|above| {
            key_line(&lines[above])
                .filter(|line| line.column < key.column && (line.key == "containers" || line.key == "initContainers"))
                .map(|line| (above, line.column))
        }) else {
            problems.push(format!("{at}: this image is not under a `containers:` list"));
            continue;
        };
        let (start, end) = mapping_range(&lines, containers, spec_column);
        let pod: Vec<&str> = lines[start..end].iter().map(|line| line.trim()).collect();
        if !pod.iter().any(|line| {
            line.trim_start_matches("- ").trim_start_matches("name:").trim().trim_matches(['"', '\'']) == PULL_SECRET
                && line.contains("name:")
        }) || find_key(&lines, (start, end), spec_column, "imagePullSecrets").is_none()
        {
            problems.push(format!("{at}: its pod has no `imagePullSecrets` entry `{PULL_SECRET}`"));
        }
        let non_root = pod.iter().any(|line| line.split('#').next().unwrap_or_default().trim() == "runAsNonRoot: true");
        let numeric_user = pod.iter().any(|line| {
            line.strip_prefix("runAsUser:").is_some_and(|value| {
                value.split('#').next().unwrap_or_default().trim().parse::<u32>().is_ok_and(|uid| uid != 0)
            })
        });
        if !non_root || !numeric_user {
            problems.push(format!(
                "{at}: its pod needs a securityContext with `runAsNonRoot: true` and a numeric, non-zero `runAsUser`"
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests;

/// The `kubernetes.io/dockerconfigjson` Secret that `kubectl create secret docker-registry
/// --dry-run=client -o yaml` prints, for `server` with these credentials.
pub fn pull_secret_yaml(name: &str, namespace: &str, server: &str, username: &str, password: &str) -> String {
    use base64::Engine;
    let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let config = serde_json::json!({
        "auths": { server: { "username": username, "password": password, "auth": encode(&format!("{username}:{password}")) } }
    });
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {}\n",
        encode(&config.to_string())
    )
}
