//! The Kubernetes pod fields an ACME HTTP-01 solver's `podTemplate` may set (schema only, see
//! the parent module).

use std::collections::BTreeMap;

use schemars::JsonSchema;

use super::Quantity;

/// The solver pod's template: labels, annotations and a subset of the pod spec.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Http01PodTemplate {
    pub metadata: Option<ObjectMetaOverride>,
    pub spec: Option<Http01PodSpec>,
}

/// Labels and annotations added to a generated object.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMetaOverride {
    pub annotations: Option<BTreeMap<String, String>>,
    pub labels: Option<BTreeMap<String, String>>,
}

/// The fields of a pod spec an HTTP-01 solver pod may set.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Http01PodSpec {
    pub affinity: Option<Affinity>,
    /// cert-manager's CRD makes this a map list keyed by `name` with `default: ""`; a v1.20 API
    /// server refuses that (it reads the empty default as `null`, and a map key needs a default
    /// or must be required), so it is an atomic list here: it accepts every object cert-manager's
    /// does, and server-side apply replaces it whole.
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub image_pull_secrets: Option<Vec<PodLocalObjectReference>>,
    pub node_selector: Option<BTreeMap<String, String>>,
    pub priority_class_name: Option<String>,
    pub resources: Option<ResourceRequirements>,
    pub security_context: Option<PodSecurityContext>,
    pub service_account_name: Option<String>,
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub tolerations: Option<Vec<Toleration>>,
}

/// Kubernetes `core/v1` `Affinity`.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Affinity {
    pub node_affinity: Option<NodeAffinity>,
    pub pod_affinity: Option<PodAffinity>,
    pub pod_anti_affinity: Option<PodAffinity>,
}

/// Kubernetes `core/v1` `NodeAffinity`.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeAffinity {
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub preferred_during_scheduling_ignored_during_execution: Option<Vec<PreferredSchedulingTerm>>,
    pub required_during_scheduling_ignored_during_execution: Option<NodeSelector>,
}

/// Kubernetes `core/v1` `PreferredSchedulingTerm`.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreferredSchedulingTerm {
    pub preference: NodeSelectorTerm,
    pub weight: i32,
}

/// Kubernetes `core/v1` `NodeSelectorTerm`.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
pub struct NodeSelectorTerm {
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub match_expressions: Option<Vec<SelectorRequirement>>,
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub match_fields: Option<Vec<SelectorRequirement>>,
}

/// Kubernetes `NodeSelectorRequirement` and `LabelSelectorRequirement` (the same shape).
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelectorRequirement {
    pub key: String,
    pub operator: String,
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub values: Option<Vec<String>>,
}

/// Kubernetes `core/v1` `NodeSelector`.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
pub struct NodeSelector {
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub node_selector_terms: Vec<NodeSelectorTerm>,
}

/// Kubernetes `core/v1` `PodAffinity` and `PodAntiAffinity` (the same shape).
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodAffinity {
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub preferred_during_scheduling_ignored_during_execution: Option<Vec<WeightedPodAffinityTerm>>,
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub required_during_scheduling_ignored_during_execution: Option<Vec<PodAffinityTerm>>,
}

/// Kubernetes `core/v1` `WeightedPodAffinityTerm`.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WeightedPodAffinityTerm {
    pub pod_affinity_term: PodAffinityTerm,
    pub weight: i32,
}

/// Kubernetes `core/v1` `PodAffinityTerm`.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodAffinityTerm {
    pub label_selector: Option<LabelSelector>,
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub match_label_keys: Option<Vec<String>>,
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub mismatch_label_keys: Option<Vec<String>>,
    pub namespace_selector: Option<LabelSelector>,
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub namespaces: Option<Vec<String>>,
    pub topology_key: String,
}

/// Kubernetes `meta/v1` `LabelSelector`.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
pub struct LabelSelector {
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub match_expressions: Option<Vec<SelectorRequirement>>,
    pub match_labels: Option<BTreeMap<String, String>>,
}

/// Kubernetes `core/v1` `LocalObjectReference`.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
pub struct PodLocalObjectReference {
    /// No `default: ""` (see [`Http01PodSpec::image_pull_secrets`]).
    pub name: Option<String>,
}

/// CPU and memory limits and requests of the solver pod.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRequirements {
    pub limits: Option<BTreeMap<String, Quantity>>,
    pub requests: Option<BTreeMap<String, Quantity>>,
}

/// The fields of a `core/v1` `PodSecurityContext` a solver pod may set.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodSecurityContext {
    pub fs_group: Option<i64>,
    pub fs_group_change_policy: Option<String>,
    pub run_as_group: Option<i64>,
    pub run_as_non_root: Option<bool>,
    pub run_as_user: Option<i64>,
    pub se_linux_options: Option<SeLinuxOptions>,
    pub seccomp_profile: Option<SeccompProfile>,
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub supplemental_groups: Option<Vec<i64>>,
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub sysctls: Option<Vec<Sysctl>>,
}

/// Kubernetes `core/v1` `SELinuxOptions`.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeLinuxOptions {
    pub level: Option<String>,
    pub role: Option<String>,
    #[serde(rename = "type")]
    pub r#type: Option<String>,
    pub user: Option<String>,
}

/// Kubernetes `core/v1` `SeccompProfile`.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeccompProfile {
    pub localhost_profile: Option<String>,
    #[serde(rename = "type")]
    pub r#type: String,
}

/// Kubernetes `core/v1` `Sysctl`.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sysctl {
    pub name: String,
    pub value: String,
}

/// Kubernetes `core/v1` `Toleration`.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Toleration {
    pub effect: Option<String>,
    pub key: Option<String>,
    pub operator: Option<String>,
    pub toleration_seconds: Option<i64>,
    pub value: Option<String>,
}
