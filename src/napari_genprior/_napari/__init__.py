"""napari shell: magicgui widgets and worker plumbing. The only package that imports napari or Qt."""
