"""What an identity may do: one place that decides (identity, action, study) -> allowed, or why not.

Actions and their scopes are pyjpip.security.identity's. Which studies an identity may read is an
access policy's business, a callable ``policy(identity, study_uid, patient_id) -> bool``:

- ``any_reader`` (the default): whoever has the read scope reads every study;
- ``ClaimsPolicy`` (a JSON file, ``--access-policy policy.json``): a claim of the token lists the
  patient IDs or study UIDs it may see (``"patients_claim"``, ``"studies_claim"``), and/or a claim's
  values (groups, roles) are mapped to patterns of patient IDs and study UIDs (``"grants"``)::

      {"studies_claim": "pyjpip_studies", "patients_claim": "pyjpip_patients",
       "claim": "groups",
       "grants": {"cardiology": {"patients": ["CARD-*"]}, "research": {"studies": ["1.2.826.0.1.*"]}}}

  Patterns are shell patterns (fnmatch, case-sensitive); a grant of ``"*"`` is every study;
- a site's own, ``--access-policy package.module:callable``.

An identity with the administer scope sees every study. The Site asks ``Authorizer`` once per
request (pyjpip.transport.site) and learns which study a DICOMweb path, a hollow object or a JPIP
target belongs to from ``StudyDirectory``: a study it may not see is answered 404, as one that does
not exist, so the answer does not tell that it does.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from typing import Callable

from pyjpip.errors import AccessDeniedError, AccessPolicyError
from pyjpip.security.identity import ADMINISTER, READ, Identity, ScopeVocabulary

log = logging.getLogger(__name__)

MAXIMUM_POLICY_BYTES = 1 << 20
MAXIMUM_CLAIM_VALUES = 10000

Policy = Callable[[Identity, str, "str | None"], bool]


def any_reader(identity: Identity, study_uid: str, patient_id: str | None) -> bool:
    """The default policy: any authenticated reader reads any study."""
    return True


any_reader.sees_everything = True


def _values(claims, name: str | None) -> list[str]:
    if not name:
        return []
    value = claims
    for step in name.split("."):
        value = value.get(step) if isinstance(value, dict) else None
    if isinstance(value, str):
        return value.replace(",", " ").split()[:MAXIMUM_CLAIM_VALUES]
    if isinstance(value, list):
        return [v for v in value[:MAXIMUM_CLAIM_VALUES] if isinstance(v, str)]
    return []


@dataclass(frozen=True)
class ClaimsPolicy:
    """Claims of the token to the studies and patients it may see (see the module's docstring)."""

    studies_claim: str | None = None
    patients_claim: str | None = None
    claim: str | None = None
    grants: dict | None = None

    @classmethod
    def from_file(cls, path: str) -> ClaimsPolicy:
        try:
            if os.path.getsize(path) > MAXIMUM_POLICY_BYTES:
                raise AccessPolicyError(f"{path}: over {MAXIMUM_POLICY_BYTES} bytes")
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as error:
            raise AccessPolicyError(f"{path}: not a readable JSON access policy ({error})") from None
        return cls.from_dict(data, path)

    @classmethod
    def from_dict(cls, data, where: str = "access policy") -> ClaimsPolicy:
        if not isinstance(data, dict):
            raise AccessPolicyError(f"{where}: not a JSON object")
        known = {"studies_claim", "patients_claim", "claim", "grants"}
        unknown = set(data) - known
        if unknown:
            raise AccessPolicyError(f"{where}: unknown field(s) {', '.join(sorted(unknown))} "
                                    f"(known: {', '.join(sorted(known))})")
        grants = data.get("grants") or {}
        if not isinstance(grants, dict) or any(
                not isinstance(g, dict) or set(g) - {"patients", "studies"}
                or any(not isinstance(v, list) or not all(isinstance(p, str) for p in v) for v in g.values())
                for g in grants.values()):
            raise AccessPolicyError(f"{where}: grants must map a claim value to "
                                    '{"patients": [patterns], "studies": [patterns]}')
        if grants and not data.get("claim"):
            raise AccessPolicyError(f"{where}: grants need \"claim\", the claim whose values they are keyed by")
        if not (data.get("studies_claim") or data.get("patients_claim") or grants):
            raise AccessPolicyError(f"{where}: grants nothing (give studies_claim, patients_claim or grants)")
        return cls(data.get("studies_claim"), data.get("patients_claim"), data.get("claim"), grants)

    def __call__(self, identity: Identity, study_uid: str, patient_id: str | None) -> bool:
        claims = identity.claims
        if study_uid in _values(claims, self.studies_claim):
            return True
        if patient_id and patient_id in _values(claims, self.patients_claim):
            return True
        for value in _values(claims, self.claim):
            grant = (self.grants or {}).get(value)
            if not grant:
                continue
            if any(fnmatch.fnmatchcase(study_uid, p) for p in grant.get("studies", ())):
                return True
            if patient_id and any(fnmatch.fnmatchcase(patient_id, p) for p in grant.get("patients", ())):
                return True
        return False


def load_policy(spec: str | None) -> Policy:
    """The policy ``--access-policy`` names: None (any reader), a JSON file, or ``module:callable``."""
    if not spec:
        return any_reader
    if os.path.exists(spec) or spec.endswith(".json"):
        return ClaimsPolicy.from_file(spec)
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise AccessPolicyError(f"--access-policy {spec!r}: give a JSON file or module:callable")
    try:
        target = importlib.import_module(module_name)
        for step in attribute.split("."):
            target = getattr(target, step)
    except (ImportError, AttributeError) as error:
        raise AccessPolicyError(f"--access-policy {spec!r}: {error}") from None
    if not callable(target):
        raise AccessPolicyError(f"--access-policy {spec!r} is not callable")
    return target


class StudyDirectory:
    """Which study a DICOMweb resource or a JPIP target belongs to, and a study's patient.

    Studies and their Patient IDs come from the store's catalog (pyjpip.dicom.dicomweb.Catalog: an
    ingested store's index.json, received files, an archive database); a JPIP target is a file of an
    ingested study when the store's index.json names it as an instance's ``image``
    (pyjpip.dicom.ingest writes ``images/<study>/<series>/<instance>.j2k``). Both are read again when
    the catalog changes."""

    def __init__(self, catalog=None, jpip_root: str | None = None):
        self.catalog = catalog
        self.root = os.path.realpath(jpip_root) if jpip_root else None
        self.lock = threading.Lock()
        self.generation = object()
        self.index_stamp = None
        self.patients: dict[str, str | None] = {}
        self.targets: dict[str, str] = {}

    def _refresh(self) -> None:
        if self.catalog is not None:
            try:
                generation = self.catalog.generation()
            except Exception:  # noqa: BLE001 - a root that is no store lists nothing
                generation = None
            if generation != self.generation:
                patients = {}
                try:
                    studies = self.catalog.studies() if generation is not None else []
                except Exception as error:  # noqa: BLE001 - a store that cannot list has no study to give
                    log.warning("the store's studies cannot be listed: %s", error)
                    studies = []
                if generation is not None:
                    for entry in studies:
                        study = (entry.get("0020000D", {}).get("Value") or [None])[0]
                        patient = (entry.get("00100020", {}).get("Value") or [None])[0]
                        if isinstance(study, str):
                            patients[study] = patient if isinstance(patient, str) else None
                self.patients, self.generation = patients, generation
        if self.root is not None:
            index = os.path.join(self.root, "index.json")
            try:
                stamp = os.stat(index).st_mtime_ns
            except OSError:
                stamp = None
            if stamp != self.index_stamp:
                targets = {}
                if stamp is not None:
                    try:
                        with open(index) as f:
                            data = json.load(f)
                    except (OSError, ValueError) as error:
                        log.warning("%s unreadable: %s; its targets belong to no study", index, error)
                        data = {}
                    # another kind of index.json (the demo site's list of files) names no study's images
                    entries = data.get("instances") if isinstance(data, dict) else None
                    for entry in (entries.values() if isinstance(entries, dict) else ()):
                        if isinstance(entry, dict) and isinstance(entry.get("image"), str):
                            path = os.path.realpath(os.path.join(self.root, entry["image"]))
                            targets[path] = str(entry.get("study"))
                self.targets, self.index_stamp = targets, stamp

    def patient_of(self, study_uid: str) -> tuple[bool, str | None]:
        """(whether the store has the study, its Patient ID)."""
        with self.lock:
            self._refresh()
            return study_uid in self.patients, self.patients.get(study_uid)

    def study_of_target(self, target: str) -> str | None:
        """The study a JPIP target (a name under the JPIP root) belongs to; None for one no study claims."""
        if self.root is None:
            return None
        name = target[1:] if target.startswith("/") and not target.startswith("//") else target
        try:
            path = os.path.realpath(os.path.join(self.root, name))
        except (ValueError, OSError):  # a name no file has (a NUL): the target store refuses it
            return None
        with self.lock:
            self._refresh()
            return self.targets.get(path)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""
    status: int = 200


class Authorizer:
    """The one place that decides (identity, action, study) -> Decision."""

    def __init__(self, policy: Policy = any_reader, vocabulary: ScopeVocabulary | None = None):
        self.policy = policy
        self.vocabulary = vocabulary or ScopeVocabulary()

    def sees_everything(self, identity: Identity) -> bool:
        return identity.anonymous or identity.may(ADMINISTER) or getattr(self.policy, "sees_everything", False)

    def decide(self, identity: Identity, action: str, study_uid: str | None = None,
               patient_id: str | None = None) -> Decision:
        if not identity.may(action):
            scope = self.vocabulary.scope_for(action)
            return Decision(False, f"{identity.subject} lacks scope {scope!r} ({action})", 403)
        if study_uid is None or action != READ or self.sees_everything(identity):
            return Decision(True)
        try:
            allowed = bool(self.policy(identity, study_uid, patient_id))
        except Exception as error:  # noqa: BLE001 - a site's policy failing refuses, it does not open
            log.exception("the access policy failed for %s on study %s", identity.subject, study_uid)
            return Decision(False, f"the access policy failed ({type(error).__name__})", 404)
        if not allowed:
            return Decision(False, f"the access policy does not give study {study_uid} to {identity.subject}", 404)
        return Decision(True)

    def require(self, identity: Identity, action: str, study_uid: str | None = None,
                patient_id: str | None = None) -> None:
        decision = self.decide(identity, action, study_uid, patient_id)
        if not decision.allowed:
            raise AccessDeniedError(decision.reason, decision.status,
                                    self.vocabulary.scope_for(action) if decision.status == 403 else None)
