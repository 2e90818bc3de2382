# Sourced by the GPU scripts here: unpacks the static binary (.devbin/mlra.gz) to /tmp/mlra,
# points MLRA_NVRTC and MLRA_CUBLAS at the CUDA toolkit's libraries, caches compiled kernels
# in /tmp/kc, and lets mpirun run as root (the device machine's user).
gunzip -c .devbin/mlra.gz > /tmp/mlra && chmod +x /tmp/mlra
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -e "$d/libnvrtc.so.13" ] && export MLRA_NVRTC="$d"
    [ -e "$d/libcublas.so.13" ] && export MLRA_CUBLAS="$d"
done
export MLRA_KERNEL_CACHE=/tmp/kc OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
