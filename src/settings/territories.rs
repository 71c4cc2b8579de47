//! The `[territories]` section: where France's official geography is read
//! from.
//!
//! It refuses nothing itself: the file is read, and checked, where the
//! geography is loaded.

use std::path::PathBuf;

use serde::Deserialize;

use crate::geography::{Geography, GeographyError};

/// Where France's official geography is read from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TerritoriesSettings {
    /// A territories file of another millésime, made by
    /// `scripts/territories`; unset, the geography compiled into relais
    /// (`data/territories.tsv` of its source tree).
    pub path: Option<PathBuf>,
}

impl TerritoriesSettings {
    /// The geography these settings name: the file, or the built-in one.
    ///
    /// # Errors
    /// [`GeographyError`] when the file cannot be read or is not a
    /// territories file.
    pub fn geography(&self) -> Result<Geography, GeographyError> {
        match &self.path {
            Some(path) => Geography::load(path),
            None => Ok(Geography::built_in()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geography::Origin;

    #[test]
    fn without_a_path_the_geography_is_the_one_built_in() {
        let geography = TerritoriesSettings::default().geography().unwrap();

        assert_eq!(geography.origin(), &Origin::BuiltIn { millesime: 2026 });
        assert_eq!(geography.origin().to_string(), "built in, millésime 2026");
    }

    #[test]
    fn a_path_names_a_file_of_another_millesime() {
        let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data/territories.tsv"));
        let settings = TerritoriesSettings {
            path: Some(path.clone()),
        };

        let geography = settings.geography().unwrap();

        assert_eq!(geography.origin(), &Origin::File(path));
    }

    #[test]
    fn a_missing_file_is_an_error_that_names_it() {
        let settings = TerritoriesSettings {
            path: Some("/nonexistent/territories.tsv".into()),
        };

        let error = settings.geography().unwrap_err();

        assert!(
            error.to_string().contains("/nonexistent/territories.tsv"),
            "{error}"
        );
    }
}
