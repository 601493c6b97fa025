# cmake -DSPV=in.spv -DOUT=out.c -DNAME=name -P embed.cmake
# Writes the SPIR-V words of SPV as `const uint32_t nb_spv_NAME[]` (little-endian words).
file(READ ${SPV} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR rem "${n} % 8")
if(NOT rem EQUAL 0 OR n EQUAL 0)
  message(FATAL_ERROR "${SPV}: not a whole number of SPIR-V words")
endif()
# bytes b0 b1 b2 b3 -> word 0xb3b2b1b0
string(REGEX REPLACE "(..)(..)(..)(..)" "0x\\4\\3\\2\\1u," words "${hex}")
string(REGEX REPLACE "(0x........u,0x........u,0x........u,0x........u,0x........u,0x........u,)" "\\1\n" words "${words}")
file(WRITE ${OUT} "/* generated from ${NAME}.spv */\n#include <stddef.h>\n#include <stdint.h>\n"
  "const uint32_t nb_spv_${NAME}[] = {\n${words}\n};\n"
  "const size_t nb_spv_${NAME}_size = sizeof(nb_spv_${NAME});\n")
