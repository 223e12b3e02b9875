//! `cargo xtask cleanup`: applies the retention policy (R11) per service. The registry is read
//! into a snapshot, the pure policy decides (`retention.rs`), `--dry-run` prints that plan, and
//! a real run deletes exactly it, with bounded concurrency.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use serde::Serialize;

use crate::hub;
use crate::registry::Client;
use crate::registry::oci::{self, ImageConfig};
use crate::retention::{self, Method, Policy};

#[derive(Debug, Serialize)]
pub struct ServicePlan {
    pub service: String,
    pub repository: String,
    #[serde(flatten)]
    pub plan: retention::Plan,
}

/// Seconds since the Unix epoch of an RFC 3339 UTC time (`2026-12-04T15:40:00Z`, fractions
/// and offsets accepted).
pub fn unix_seconds(text: &str) -> Option<i64> {
    let (date, time) = text.split_once('T')?;
    let mut date_parts = date.split('-').map(|part| part.parse::<i64>().ok());
    let (year, month, day) = (date_parts.next()??, date_parts.next()??, date_parts.next()??);
    let clock: String = time.chars().take_while(|c| c.is_ascii_digit() || *c == ':').collect();
    let mut clock_parts = clock.split(':').map(|part| part.parse::<i64>().ok());
    let (hour, minute, second) = (clock_parts.next()??, clock_parts.next()??, clock_parts.next()?.unwrap_or(0));
    let offset = match time.rfind(['+', '-']) {
        Some(at) if at > 5 => {
            let sign = if time.as_bytes()[at] == b'-' { -1 } else { 1 };
            let (hours, minutes) = time[at + 1..].split_once(':')?;
            sign * (hours.parse::<i64>().ok()? * 3600 + minutes.parse::<i64>().ok()? * 60)
        }
        _ => 0,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if month <= 2 { (year - 1, month + 9) } else { (year, month - 3) };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * m + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Reads one repository: every tag's digest, each index's children, and the age of the images
/// behind dev tags (the label `org.opencontainers.image.created`, else the config's `created`).
pub fn snapshot(client: &Client, path: &str, policy: &Policy) -> anyhow::Result<retention::Snapshot> {
    let mut snapshot = retention::Snapshot::default();
    let mut index_digests = Vec::new();
    for tag in client.list_tags(path)? {
        let Some((digest, media_type)) = client.head_manifest_typed(path, &tag)? else { continue };
        if (media_type == oci::OCI_INDEX || media_type == oci::DOCKER_LIST) && !index_digests.contains(&digest) {
            index_digests.push(digest.clone());
        }
        snapshot.tags.push((tag, digest));
    }
    let mut indexes = BTreeMap::new();
    for digest in index_digests {
        let Some(index) = client.get_manifest(path, &digest)? else { continue };
        let children: Vec<String> = index.index()?.manifests.iter().map(|child| child.digest.clone()).collect();
        snapshot.children.insert(digest.clone(), children);
        indexes.insert(digest, index);
    }
    for (tag, digest) in snapshot.tags.iter().filter(|(tag, _)| tag.contains(&policy.dev_pattern)) {
        let image = match indexes.get(digest) {
            Some(index) => match oci::platform_children(&index.index()?).first() {
                Some((_, child)) => client.get_manifest(path, &child.digest)?,
                None => None,
            },
            None => client.get_manifest(path, digest)?,
        };
        let Some(image) = image.filter(|image| !image.is_index()) else { continue };
        let config: ImageConfig = client.get_blob_json(path, &image.image()?.config.digest)?;
        let label = config.config.labels.unwrap_or_default().get("org.opencontainers.image.created").cloned();
        if let Some(seconds) = label.or(config.created).as_deref().and_then(unix_seconds) {
            snapshot.created.insert(tag.clone(), seconds);
        }
    }
    Ok(snapshot)
}

/// Docker Hub deletes only through its own API, by tag; it collects untagged manifests itself.
pub fn for_docker_hub(plan: &mut retention::Plan) {
    let mut deletions = Vec::new();
    for deletion in plan.deletions.drain(..) {
        match deletion.method {
            Method::Tag => deletions.push(deletion),
            Method::Digest => deletions.extend(deletion.tags.iter().map(|tag| retention::Deletion {
                target: tag.clone(),
                method: Method::Tag,
                tags: vec![tag.clone()],
                rule: deletion.rule.clone(),
            })),
        }
    }
    plan.deletions = deletions;
}

/// Deletes one service's plan: tags and indexes first, then what they referenced, each phase
/// with at most `jobs` requests at once. Returns how many deletions were made.
pub fn execute(
    client: &Client,
    path: &str,
    plan: &retention::Plan,
    hub_token: Option<&crate::registry::auth::Secret>,
    jobs: usize,
) -> anyhow::Result<usize> {
    let (namespace, name) = path.split_once('/').unwrap_or(("library", path));
    // Untagged entries are the children of what the first phase deletes: they go second.
    let (untagged, tagged): (Vec<&retention::Deletion>, Vec<&retention::Deletion>) =
        plan.deletions.iter().partition(|deletion| deletion.tags.is_empty());
    let hub_api = hub::api_base();
    let done = AtomicUsize::new(0);
    let progress = crate::progress::Progress::new();
    let task = progress.start(name, &format!("deleting {} entries", plan.deletions.len()));
    for phase in [tagged, untagged] {
        let next = AtomicUsize::new(0);
        let errors = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..jobs.clamp(1, phase.len().max(1)) {
                scope.spawn(|| {
                    while let Some(deletion) = phase.get(next.fetch_add(1, Ordering::SeqCst)) {
                        let result = match deletion.method {
                            Method::Digest => client.delete_manifest(path, &deletion.target),
                            Method::Tag => match hub_token {
                                Some(token) => hub::delete_tag(&hub_api, token, namespace, name, &deletion.target),
                                None => Err(anyhow::anyhow!(
                                    "deleting the tag {} needs ${}",
                                    deletion.target,
                                    hub::TOKEN_VAR
                                )),
                            },
                        };
                        match result {
                            Ok(()) => {
                                let count = done.fetch_add(1, Ordering::SeqCst) + 1;
                                task.update(&format!("{count} of {} deleted", plan.deletions.len()));
                            }
                            Err(error) => errors.lock().unwrap().push(format!("{}: {error:#}", deletion.target)),
                        }
                    }
                });
            }
        });
        let errors = errors.into_inner().unwrap();
        if !errors.is_empty() {
            task.finish("FAILED");
            return Err(anyhow::anyhow!(
                "{} deletions failed (after {} succeeded):\n  {}",
                errors.len(),
                done.load(Ordering::SeqCst),
                errors.join("\n  ")
            ))
            .context(format!("clean up {path}; run the cleanup again: it plans from what is left"));
        }
    }
    task.finish(&format!("{} deleted", done.load(Ordering::SeqCst)));
    Ok(done.load(Ordering::SeqCst))
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_to_unix_seconds() {
        assert_eq!(super::unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(super::unix_seconds("2026-12-04T15:40:00Z"), Some(1_796_398_800));
        assert_eq!(super::unix_seconds("2026-12-04T16:40:00.123456789+01:00"), Some(1_796_398_800));
        assert_eq!(super::unix_seconds("2000-02-29T00:00:00Z"), Some(951_782_400));
        assert_eq!(super::unix_seconds("yesterday"), None);
    }
}
