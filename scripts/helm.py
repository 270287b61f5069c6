"""Real Helm (helm-sdkpy) for the chart tests; prints the result as JSON.

    helm.py lint CHART
    helm.py install KUBECONFIG NAMESPACE RELEASE CHART VALUES_JSON
    helm.py uninstall KUBECONFIG NAMESPACE RELEASE
"""
import asyncio
import json
import sys

import helm_sdkpy as helm


def main(argv):
    command = argv[1]
    if command == "lint":
        result = asyncio.run(helm.Lint(helm.Configuration()).run(argv[2]))
    elif command == "install":
        kubeconfig, namespace, release, chart, values = argv[2:7]
        config = helm.Configuration(namespace=namespace, kubeconfig=kubeconfig, insecure_skip_tls_verify=True)
        # No kubelet runs in the test cluster: pods never start, so do not wait for them.
        result = asyncio.run(helm.Install(config).run(
            release, chart, values=json.loads(values), create_namespace=True, wait=False, timeout=120))
    elif command == "uninstall":
        kubeconfig, namespace, release = argv[2:5]
        config = helm.Configuration(namespace=namespace, kubeconfig=kubeconfig, insecure_skip_tls_verify=True)
        result = asyncio.run(helm.Uninstall(config).run(release))
    else:
        raise SystemExit(__doc__)
    json.dump(result, sys.stdout, default=str)


if __name__ == "__main__":
    main(sys.argv)
