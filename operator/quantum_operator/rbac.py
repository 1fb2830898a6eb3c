"""Least-privilege RBAC for the operator, as data (the chart mirrors these rules).

``rules()`` is a namespaced Role in every namespace the operator watches (or a
ClusterRole bound cluster-wide for ``--all-namespaces``). ``cluster_rules()``
are the few cluster-scoped permissions: kopf's resource/namespace scanning and,
only with ``--webhook-managed``, the ValidatingWebhookConfiguration.
No delete verbs: children are removed by the garbage collector (owner references).
"""

from __future__ import annotations

from typing import Any

from quantum_operator import names

Rule = dict[str, Any]


def rules(*, peering: bool = False) -> list[Rule]:
    out: list[Rule] = [
        {"apiGroups": [names.GROUP], "resources": [names.PLURAL], "verbs": ["get", "list", "watch", "patch"]},
        {"apiGroups": [names.GROUP], "resources": [f"{names.PLURAL}/status"], "verbs": ["get", "patch"]},
        # OwnerReferencesPermissionEnforcement (OpenShift, hardened clusters): a child whose owner
        # reference sets blockOwnerDeletion needs `update` on the owner's finalizers subresource
        {"apiGroups": [names.GROUP], "resources": [f"{names.PLURAL}/finalizers"], "verbs": ["update"]},
        {"apiGroups": [""], "resources": ["configmaps", "services"], "verbs": ["get", "create", "patch"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "create", "patch"]},
        {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["get", "create", "patch"]},
        # existence of referenced Secrets, the Redis URL (key 'url') for heartbeats/pause flag, and each
        # profile's own Redis credentials, Secret <p>-redis-auth (managed ACL: created, kept, never listed)
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create", "patch"]},
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create"]},
    ]
    if peering:  # only without --standalone (several operator replicas)
        out.append(
            {
                "apiGroups": ["kopf.dev"],
                "resources": ["kopfpeerings"],
                "verbs": ["get", "list", "watch", "patch"],
            }
        )
    return out


def permits(rules: list[Rule], *, verb: str, group: str, resource: str) -> bool:
    """Whether ``rules`` grant ``verb`` on ``group``/``resource`` (``resource`` may be ``plural/sub``),
    the way the API server's RBAC authorizer matches them (``*`` wildcards included)."""
    for rule in rules:
        if group not in rule.get("apiGroups", ()) and "*" not in rule.get("apiGroups", ()):
            continue
        if resource not in rule.get("resources", ()) and "*" not in rule.get("resources", ()):
            continue
        if verb in rule.get("verbs", ()) or "*" in rule.get("verbs", ()):
            return True
    return False


def cluster_rules(*, webhook_managed: bool = False) -> list[Rule]:
    out: list[Rule] = [
        {
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "verbs": ["list", "watch"],
        },
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
    ]
    if webhook_managed:
        out.append(
            {
                "apiGroups": ["admissionregistration.k8s.io"],
                "resources": ["validatingwebhookconfigurations"],
                "verbs": ["get", "list", "watch", "create", "patch"],
            }
        )
    return out


def manifests(
    *, namespace: str, service_account: str = "quantum-operator", webhook_managed: bool = False
) -> list[dict[str, Any]]:
    """ServiceAccount, Role + RoleBinding (namespace), ClusterRole + ClusterRoleBinding (scanning)."""
    labels = {names.LABEL_NAME: names.APP_NAME, names.LABEL_COMPONENT: "operator"}
    subject = [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}]
    cluster_name = f"{service_account}-{namespace}"
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": service_account, "namespace": namespace, "labels": labels},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": service_account, "namespace": namespace, "labels": labels},
            "rules": rules(),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": service_account, "namespace": namespace, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": service_account},
            "subjects": subject,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": cluster_name, "labels": labels},
            "rules": cluster_rules(webhook_managed=webhook_managed),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": cluster_name, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_name},
            "subjects": subject,
        },
    ]
