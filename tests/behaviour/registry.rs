//! The registry maintained from a spreadsheet: `relais registry import`
//! reading each form of territory, French headers, Windows-1252 and UTF-8,
//! `;` and `,`; refusing an ambiguous postal code with its candidates, an
//! unknown column, and every bad row at once with its line (nothing
//! written); `--into` replacing only the networks the spreadsheet names;
//! and `relais registry export --csv` imported back giving the same
//! coverage.

use relais_testkit as support;

use std::path::PathBuf;

use support::{REGISTRY, World, text};

/// A registry with what a spreadsheet cannot say: its version label, a
/// network's hours, a publisher, a référent's absences, hours and time zone; and every level
/// of territory, deputies and a fallback.
const FULL: &str = r#"
version = "2026-12 UNCCAS"

[[route]]
kind = "orientation_sociale"
networks = ["ccas"]
label = "Orientation sociale"

[[route]]
kind = "acces_aux_droits"
networks = ["cpam", "caf"]
label = "Accès aux droits"

[[network]]
name = "cpam"
hours = { mon-fri = "08:30-17:00" }

[[publisher]]
user = "sos75"
association = "SOS Médecins Paris"
departements = ["75"]

[[referent]]
id = "ccas-paris-13"
network = "ccas"
name = "Camille Martin"
organisation = "CCAS de Paris 13e"
email = "camille.martin@ccas-paris13.test"
phone = "01 53 00 00 00"
communes = ["75113", "75114"]
deputies = ["ccas-paris"]
absences = [{ from = "2026-12-24", to = "2027-01-02" }]

[[referent]]
id = "ccas-paris"
network = "ccas"
organisation = "Centre d'action sociale de la Ville de Paris"
email = "social@paris.test"
departements = ["75"]
hours = { mon-fri = "09:00-17:00" }
time_zone = "Europe/Paris"

[[referent]]
id = "cias-lyon"
network = "ccas"
email = "cias@lyon.test"
epcis = ["200046977"]

[[referent]]
id = "ccas-permanence"
network = "ccas"
email = "permanence@ccas.test"
fallback = true

[[referent]]
id = "cpam-idf"
network = "cpam"
email = "referent@cpam-idf.test"
regions = ["11"]

[[referent]]
id = "caf-75"
network = "caf"
email = "referent@caf-paris.test"
departements = ["75"]
"#;

fn write(world: &World, name: &str, bytes: &[u8]) -> PathBuf {
    let path = world.dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn arg(path: &std::path::Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test]
async fn an_import_reads_each_form_of_territory_under_french_headers_in_windows_1252() {
    // Arrange: Windows-1252 (`é` is byte E9), `;`, French headers, accents
    // in the headers and in the names.
    let world = World::new(REGISTRY).await;
    let csv = "réseau;organisme;nom;courriel;téléphone;code_insee;code_postal;commune;\
               département;epci;région;repli;suppléants\r\n\
               ccas;CCAS de Paris 13e;Camille Martin;camille@paris13.test;01 53 00 00 00;75113;;;;;;;\r\n\
               ccas;CCAS de Bourg;;ccas@bourg.test;;;01000;Bourg-en-Bresse;;;;;\r\n\
               ccas;CCAS de Saint-Étienne;;ccas@saint-etienne.test;;;;st etienne;Loire;;;;\r\n\
               ccas;CCAS de Béon;;ccas@lyon.test;;;;;;200046977;;;\r\n\
               cpam;CPAM de Paris;;cpam@paris.test;;;;;75;;;;\r\n\
               caf;CAF Île-de-France;;caf@idf.test;;;;;;;Île-de-France;;\r\n\
               ccas;Permanence;;permanence@ccas.test;;;;;;;;oui;ccas-75113 | ccas-01053\r\n";
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(csv);
    assert!(!unmappable);
    let file = write(&world, "referents.csv", &bytes);

    // Act
    let import = world.cli(&["registry", "import", arg(&file)]);

    // Assert
    assert!(import.status.success(), "{}", text(&import.stderr));
    assert_eq!(
        text(&import.stdout),
        r#"# Référents imported by `relais registry import`: relais needs the
# [[route]]s too (docs/operations.md, "From the spreadsheet").

[[referent]]
id = "caf-region-11"
network = "caf"
organisation = "CAF Île-de-France"
email = "caf@idf.test"
regions = ["11"]

[[referent]]
id = "ccas-01053"
network = "ccas"
organisation = "CCAS de Bourg"
email = "ccas@bourg.test"
communes = ["01053"]

[[referent]]
id = "ccas-42218"
network = "ccas"
organisation = "CCAS de Saint-Étienne"
email = "ccas@saint-etienne.test"
communes = ["42218"]

[[referent]]
id = "ccas-75113"
network = "ccas"
name = "Camille Martin"
organisation = "CCAS de Paris 13e"
email = "camille@paris13.test"
phone = "01 53 00 00 00"
communes = ["75113"]

[[referent]]
id = "ccas-epci-200046977"
network = "ccas"
organisation = "CCAS de Béon"
email = "ccas@lyon.test"
epcis = ["200046977"]

[[referent]]
id = "ccas-fallback"
network = "ccas"
organisation = "Permanence"
email = "permanence@ccas.test"
fallback = true
deputies = ["ccas-75113", "ccas-01053"]

[[referent]]
id = "cpam-75"
network = "cpam"
organisation = "CPAM de Paris"
email = "cpam@paris.test"
departements = ["75"]
"#
    );
    assert_eq!(
        text(&import.stderr),
        "relais: 7 référent(s) of caf, ccas, cpam imported; the registry needs its [[route]]s \
         (or import with --into REGISTRY.toml)\n"
    );
    world.cleanup().await;
}

#[tokio::test]
async fn an_import_reads_utf_8_with_a_bom_and_commas_and_gathers_a_referent_s_rows() {
    // Arrange: English headers in another order, one référent on three rows.
    let world = World::new(REGISTRY).await;
    let csv = "\u{feff}email,network,id,insee,departement,name\n\
               ccas@marseille.test,ccas,ccas-marseille,13201,,Agnès\n\
               ccas@marseille.test,ccas,ccas-marseille,13202,,\n\
               ccas@marseille.test,ccas,ccas-marseille,,13,Agnès\n";
    let file = write(&world, "referents.csv", csv.as_bytes());
    let output = world.dir.path().join("out.toml");

    // Act
    let import = world.cli(&["registry", "import", arg(&file), "--output", arg(&output)]);

    // Assert
    assert!(import.status.success(), "{}", text(&import.stderr));
    assert_eq!(text(&import.stdout), "");
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        r#"# Référents imported by `relais registry import`: relais needs the
# [[route]]s too (docs/operations.md, "From the spreadsheet").

[[referent]]
id = "ccas-marseille"
network = "ccas"
name = "Agnès"
email = "ccas@marseille.test"
communes = ["13201", "13202"]
departements = ["13"]
"#
    );
    world.cleanup().await;
}

#[tokio::test]
async fn a_postal_code_that_several_communes_share_is_refused_with_its_candidates() {
    // Arrange
    let world = World::new(REGISTRY).await;
    let csv = "reseau;courriel;code_postal\nccas;ccas@gers.test;32390\n";
    let file = write(&world, "referents.csv", csv.as_bytes());

    // Act
    let import = world.cli(&["registry", "import", arg(&file)]);

    // Assert
    assert_eq!(import.status.code(), Some(1));
    assert_eq!(text(&import.stdout), "");
    assert_eq!(
        text(&import.stderr),
        format!(
            "relais: {} has 1 error(s), nothing was written:\n  \
             - line 2: `code_postal` 32390 is shared by 10 communes: \
             Gavarret-sur-Aulouste (32142), Miramont-Latour (32255), Mirepoix (32258), \
             Montestruc-sur-Gers (32286), Préchac (32329), Puységur (32337), \
             Réjaumont (32341), Roquefort (32347), Sainte-Christie (32368), \
             Tourrenquets (32453); add a `commune` column or use `insee`\n",
            file.display()
        )
    );
    world.cleanup().await;
}

#[tokio::test]
async fn every_bad_row_is_reported_at_once_with_its_line_and_nothing_is_written() {
    // Arrange
    let world = World::new(REGISTRY).await;
    let csv = "id;network;email;insee;postal_code;commune;departement;fallback\n\
               ccas-a;ccas;a@ccas.test;75013;;;;\n\
               ccas-b;ccas;b@ccas.test;;;;;\n\
               ccas-c;ccas;c@ccas.test;75113;;;75;\n\
               ccas-d;ccas;d@ccas.test;;32390;Lectoure;;\n\
               ccas-e;ccas;e@ccas.test;;;Sainte-Marie;Atlantide;\n\
               ccas-f;ccas;f@ccas.test;75114;;;;\n\
               ccas-f;ccas;other@ccas.test;75115;;;;\n\
               ccas-g;ccas;g@ccas.test;;;;;peut-être\n\
               ccas-h;ccas;h@ccas.test;75116\n\
               bad id;ccas;i@ccas.test;75117;;;;\n\
               ccas-j;CCAS;not an address;75118;;;;\n";
    let file = write(&world, "referents.csv", csv.as_bytes());
    let output = world.dir.path().join("out.toml");

    // Act
    let import = world.cli(&["registry", "import", arg(&file), "--output", arg(&output)]);
    let checked = {
        // Once the rows are right, the registry's own checks, with lines.
        let csv = "id;network;email;insee\nccas-j;CCAS;not an address;75118\n";
        let file = write(&world, "checked.csv", csv.as_bytes());
        world.cli(&["registry", "import", arg(&file)])
    };

    // Assert
    assert_eq!(import.status.code(), Some(1));
    assert!(!output.exists());
    assert_eq!(
        text(&import.stderr),
        format!(
            "relais: {} has 9 error(s), nothing was written:\n  \
             - line 2: `insee` 75013 is a postal code, not an INSEE commune code: give the \
             commune's code from the Code officiel géographique (Paris 13e is 75113, its \
             postal code 75013)\n  \
             - line 3: no territory: fill one of `insee`, `postal_code` (with `commune` if it \
             serves several), `commune` with `departement`, `epci`, `departement`, `region` or \
             `fallback`\n  \
             - line 4: gives `insee` and `departement`: one territory per row (a référent's \
             territories on rows of its own)\n  \
             - line 5: `postal_code` 32390 serves no commune named \"Lectoure\": it serves \
             Gavarret-sur-Aulouste (32142), Miramont-Latour (32255), Mirepoix (32258), \
             Montestruc-sur-Gers (32286), Préchac (32329), Puységur (32337), Réjaumont (32341), \
             Roquefort (32347), Sainte-Christie (32368), Tourrenquets (32453)\n  \
             - line 6: `departement` \"Atlantide\" is no département's code or name\n  \
             - line 8: `email` differs from line 7's for référent ccas-f: the rows of one \
             référent must agree\n  \
             - line 9: `fallback` must be `yes`/`oui` or empty\n  \
             - line 10: 4 field(s), the header has 8\n  \
             - line 11: id \"bad id\" must be 1 to 64 characters of A-Z a-z 0-9 . _ -\n",
            file.display()
        )
    );
    assert_eq!(checked.status.code(), Some(1));
    let checked = text(&checked.stderr);
    assert!(
        checked.starts_with("relais: ") && checked.contains("nothing was written: the registry made has 2 error(s):\n  - referent #1 (\"ccas-j\"): network \"CCAS\" must be a lowercase identifier (e.g. `ccas`, `cpam`) (line 2)\n  - referent #1 (\"ccas-j\"): email \"not an address\" is not a valid address"),
        "{checked}"
    );
    world.cleanup().await;
}

#[tokio::test]
async fn an_unknown_column_is_named_with_the_columns_there_are() {
    // Arrange
    let world = World::new(REGISTRY).await;
    let csv = "réseau;courriel;ville;code_insee;horaires\nccas;a@ccas.test;Paris;75113;9-17\n";
    let file = write(&world, "referents.csv", csv.as_bytes());

    // Act
    let import = world.cli(&["registry", "import", arg(&file)]);

    // Assert
    assert_eq!(import.status.code(), Some(1));
    assert_eq!(
        text(&import.stderr),
        format!(
            "relais: {} has 1 error(s), nothing was written:\n  \
             - line 1 (the header): unknown column(s) `ville`, `horaires`; the columns are \
             `id` (`identifiant`), `network` (`reseau`), `organisation` (`organisme`), \
             `name` (`nom`), `email` (`courriel`), `phone` (`telephone`), `insee` \
             (`code_insee`), `postal_code` (`code_postal`), `commune`, `epci`, \
             `departement`, `region`, `fallback` (`repli`), `deputies` (`suppleants`)\n",
            file.display()
        )
    );
    world.cleanup().await;
}

#[tokio::test]
async fn an_import_into_a_registry_replaces_only_the_networks_it_names() {
    // Arrange: a new ccas list; the registry's cpam and caf référents, its
    // version label, routes, network hours and publisher stay; ccas-paris, imported again,
    // keeps its hours and time zone.
    let world = World::new(FULL).await;
    let registry = world.dir.path().join("referents.toml");
    let csv = "id;reseau;courriel;code_insee;departement\n\
               ccas-paris;ccas;nouveau@paris.test;;75\n\
               ccas-lyon-3;ccas;ccas@lyon3.test;69383;\n";
    let file = write(&world, "ccas.csv", csv.as_bytes());

    // Act
    let import = world.cli(&["registry", "import", arg(&file), "--into", arg(&registry)]);

    // Assert
    assert!(import.status.success(), "{}", text(&import.stderr));
    assert_eq!(
        text(&import.stdout),
        r#"version = "2026-12 UNCCAS"

[[route]]
kind = "orientation_sociale"
label = "Orientation sociale"
networks = ["ccas"]

[[route]]
kind = "acces_aux_droits"
label = "Accès aux droits"
networks = ["cpam", "caf"]

[[network]]
name = "cpam"

[network.hours]
mon-fri = "08:30-17:00"

[[publisher]]
association = "SOS Médecins Paris"
departements = ["75"]
user = "sos75"

[[referent]]
id = "caf-75"
network = "caf"
email = "referent@caf-paris.test"
departements = ["75"]

[[referent]]
id = "ccas-lyon-3"
network = "ccas"
email = "ccas@lyon3.test"
communes = ["69383"]

[[referent]]
id = "ccas-paris"
network = "ccas"
email = "nouveau@paris.test"
departements = ["75"]
time_zone = "Europe/Paris"

[referent.hours]
mon-fri = "09:00-17:00"

[[referent]]
id = "cpam-idf"
network = "cpam"
email = "referent@cpam-idf.test"
regions = ["11"]
"#
    );
    assert_eq!(
        text(&import.stderr),
        format!(
            "relais: 2 référent(s) of ccas imported in place of 4 in {}\n",
            registry.display()
        )
    );
    world.cleanup().await;
}

#[tokio::test]
async fn an_export_imported_back_into_its_registry_gives_the_same_coverage() {
    // Arrange
    let world = World::new(FULL).await;
    let registry = world.dir.path().join("referents.toml");
    let before = world.cli(&["coverage", "--json"]);
    assert!(before.status.success(), "{}", text(&before.stderr));
    let exported = world.dir.path().join("export.csv");

    // Act
    let export = world.cli(&["registry", "export", "--csv", "--output", arg(&exported)]);
    let import = world.cli(&[
        "registry",
        "import",
        arg(&exported),
        "--into",
        arg(&registry),
        "--output",
        arg(&registry),
    ]);
    let after = world.cli(&["coverage", "--json"]);

    // Assert
    assert!(export.status.success(), "{}", text(&export.stderr));
    assert!(import.status.success(), "{}", text(&import.stderr));
    assert_eq!(
        std::fs::read(&exported).unwrap(),
        "\u{feff}id;network;organisation;name;email;phone;insee;epci;departement;region;\
         fallback;deputies\r\n\
         caf-75;caf;;;referent@caf-paris.test;;;;75;;;\r\n\
         ccas-paris;ccas;Centre d'action sociale de la Ville de Paris;;social@paris.test;;;;75;;;\r\n\
         ccas-paris-13;ccas;CCAS de Paris 13e;Camille Martin;camille.martin@ccas-paris13.test;\
         01 53 00 00 00;75113;;;;;ccas-paris\r\n\
         ccas-paris-13;ccas;CCAS de Paris 13e;Camille Martin;camille.martin@ccas-paris13.test;\
         01 53 00 00 00;75114;;;;;ccas-paris\r\n\
         ccas-permanence;ccas;;;permanence@ccas.test;;;;;;yes;\r\n\
         cias-lyon;ccas;;;cias@lyon.test;;;200046977;;;;\r\n\
         cpam-idf;cpam;;;referent@cpam-idf.test;;;;;11;;\r\n"
            .as_bytes()
    );
    assert!(after.status.success(), "{}", text(&after.stderr));
    assert_eq!(text(&after.stdout), text(&before.stdout));
    let rewritten = std::fs::read_to_string(&registry).unwrap();
    assert!(
        rewritten.contains("[[referent.absences]]\nfrom = \"2026-12-24\"\nto = \"2027-01-02\"")
            || rewritten.contains("absences = [{ from = \"2026-12-24\", to = \"2027-01-02\" }]"),
        "{rewritten}"
    );
    world.cleanup().await;
}

#[tokio::test]
async fn a_national_spreadsheet_is_imported_whole() {
    // Arrange: a CCAS per commune, four caisses per département.
    let routes = "[[route]]\nkind = \"orientation_sociale\"\nnetworks = [\"ccas\"]\n\n\
                  [[route]]\nkind = \"acces_aux_droits\"\n\
                  networks = [\"cpam\", \"caf\", \"carsat\", \"msa\"]\n";
    let world = World::new(routes).await;
    let registry = world.dir.path().join("referents.toml");
    let (csv, referents) = support::spreadsheet::national_spreadsheet(&support::france());
    let file = write(&world, "national.csv", csv.as_bytes());
    let output = world.dir.path().join("national.toml");

    // Act
    let import = world.cli(&[
        "registry",
        "import",
        arg(&file),
        "--into",
        arg(&registry),
        "--output",
        arg(&output),
    ]);

    // Assert
    assert!(import.status.success(), "{}", text(&import.stderr));
    assert_eq!(
        text(&import.stderr),
        format!(
            "relais: {referents} référent(s) of caf, carsat, ccas, cpam, msa imported in place \
             of 0 in {}\n",
            registry.display()
        )
    );
    let written = std::fs::read_to_string(&output).unwrap();
    assert_eq!(written.matches("[[referent]]").count(), referents);
    assert_eq!(referents, support::france().units().count() + 4 * 109);
    assert!(written.contains(
        "[[referent]]\nid = \"ccas-75113\"\nnetwork = \"ccas\"\n\
         organisation = \"CCAS de Paris 13e Arrondissement\"\n\
         email = \"ccas-75113@ccas.example.org\"\nphone = \"01 53 00 00 00\"\n\
         communes = [\"75113\"]\n"
    ));
    world.cleanup().await;
}

#[tokio::test]
async fn a_registry_relais_would_refuse_is_not_exported() {
    // Arrange: a commune code that is a postal code.
    let world = World::new(REGISTRY).await;
    let broken = write(
        &world,
        "broken.toml",
        REGISTRY.replace("\"2A004\"", "\"75013\"").as_bytes(),
    );
    let output = world.dir.path().join("export.csv");

    // Act
    let export = world.cli(&[
        "registry",
        "export",
        "--csv",
        "--registry",
        arg(&broken),
        "--output",
        arg(&output),
    ]);

    // Assert
    assert_eq!(export.status.code(), Some(1));
    assert!(!output.exists());
    assert_eq!(
        text(&export.stderr),
        format!(
            "relais: the registry {} has 1 error(s), nothing was exported:\n  \
             - referent #4 (\"ccas-ajaccio\"): commune \"75013\" is a postal code, not an \
             INSEE commune code: give the commune's code from the Code officiel géographique \
             (Paris 13e is 75113, its postal code 75013)\n",
            broken.display()
        )
    );
    world.cleanup().await;
}
