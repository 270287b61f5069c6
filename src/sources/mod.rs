//! Where definitions come from: the custom resources ([`crd`]), their conversion into
//! engine definitions ([`convert`]), a folder of YAML manifests ([`files`]), and the custom
//! resources of a cluster ([`cluster`]).

pub mod admission;
pub mod cluster;
pub mod convert;
pub mod crd;
pub mod files;

use kube::CustomResourceExt;

/// The five CRDs as one multi-document YAML stream, as committed under `crds/`.
pub fn crds_yaml() -> String {
    let crds = [
        crd::OrganizationalUnit::crd(),
        crd::PermissionSet::crd(),
        crd::Role::crd(),
        crd::UserBinding::crd(),
        crd::ApiCatalog::crd(),
    ];
    crds.iter().map(|c| serde_saphyr::to_string(c).expect("a CRD serializes to YAML")).collect::<Vec<_>>().join("---\n")
}
