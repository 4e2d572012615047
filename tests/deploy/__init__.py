"""Tests of deploy/: every file parsed and checked, and the three-agency example run.

- :mod:`tests.deploy.test_deploy_files`: the example configs through the real loaders, the
  compose file and the Containerfile parsed and checked;
- :mod:`tests.deploy.test_systemd`: the units through ``systemd-analyze verify`` and
  ``systemd-analyze security``, the sysusers file through ``systemd-sysusers --dry-run``;
- :mod:`tests.deploy.test_k8s`: the Kubernetes manifests parsed and checked;
- :mod:`tests.deploy.test_three_agency`: deploy/three-agency/README.md's ``sh`` blocks run in a
  copy of the folder (keys by the real ``crossband keys``), then the relay and the three
  endpoints started from those configs on loopback (:mod:`tests.deploy.walkthrough`,
  :mod:`tests.deploy.processes`); :mod:`tests.deploy.files` holds what the checks share.
"""
