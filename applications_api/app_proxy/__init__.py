"""app_proxy: forwards authenticated calls to an application's own backend."""
