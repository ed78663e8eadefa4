"""`drifting-collect`: drives the envs' scripted experts and writes Push-T zarr / robomimic hdf5 stores."""
