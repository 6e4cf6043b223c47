"""Image reconstruction with logic networks: super-resolution and denoising (``--task``), trained
on windows, run as circuits over images of any size."""
