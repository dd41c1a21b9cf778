"""The commission service. Its domain arrives with the services issue; the package exists so the
workspace, images and manifests have a stable place to build from."""
